"""What users run against the models besides search: similarity, classification, vectors, model facts.

Library code shared by the HTTP routes and the command line:

    encoding.py       texts → vectors the way the index does it (NFKC, then the served model)
    similarity.py     cosine similarity of embeddings, or a cross-encoder when configured
    zero_shot.py      labels (with descriptions or templates) scored by embedding similarity
    few_shot.py       logistic regression on the embeddings of labelled examples
    classifiers.py    named few-shot classifiers kept in SQLite beside the index
    finetuned.py      transformers sequence-classification models
    ladder.py         picks zero-shot, few-shot, named or fine-tuned for a request, and runs it
    predictions.py    the per-label scores every classifier returns
    embedding_api.py  model names, window checks and encodings for /v1/embeddings
    model_info.py     the facts /models and `yomitoki models` report (gguf_header.py reads GGUF files)
    model_caches.py   bundled models, the Hugging Face cache and ONNX exports on this machine
    loading.py        registers the optional models with the server's lazy ModelRegistry
    cli_support.py    files in and tables out for `yomitoki classify` and `yomitoki models`
"""
