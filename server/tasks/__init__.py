"""What users run against the models besides search: similarity, classification, model facts.

Library code shared by the HTTP routes and the command line:

    similarity.py   cosine similarity of embeddings, or a cross-encoder when configured
    zero_shot.py    labels (with descriptions or templates) scored by embedding similarity
    few_shot.py     logistic regression on the embeddings of labelled examples
    classifiers.py  named few-shot classifiers kept in SQLite beside the index
    finetuned.py    transformers sequence-classification models
    model_info.py   the facts `/models` and `yomitoki models` report

Every text goes through the same NFKC normalization as documents and queries
(`encoding.embed_texts`) before it is embedded.
"""
