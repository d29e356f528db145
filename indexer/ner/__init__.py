"""Named entities: models, extraction with offsets into the original text, type mappings, fine-tuning."""
