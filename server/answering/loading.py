"""The answering models in the server's lazy model registry, and which runtime runs a generator.

A generator name picks its runtime: `openai:BASE_URL` an OpenAI-compatible
upstream (`upstream.py`); the bundled name or a `.gguf` file llama.cpp
(`llamacpp.py`); a transformers folder or hub id transformers (`generators.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from indexer.embed.locations import locate_generator
from indexer.errors import InputError
from server.answering.generators import TextGenerator, _gguf_location, load_generator
from server.answering.llamacpp import DEFAULT_THREADS, load_llamacpp
from server.answering.qa_reader import load_qa_reader
from server.answering.upstream import PREFIX, OpenAIGenerator, UpstreamSettings
from server.model_registry import ModelRegistry

DEFAULT_GENERATOR = "smollm2-135m-instruct"
# The languages `auto` generates in with a bundled model (`--generator-languages` overrides). SmolLM2-135M
# writes English only, and even in English its answers hold a gold answer far less often than the
# sentence reader's (benchmarks/answering.py, the same 40 SQuAD questions: 29.7% of its answers against
# 85.0%), at twenty times the latency; so `auto` answers extractively with it, and it writes only
# when asked (mode generative).
BUNDLED_LANGUAGES: dict[str, tuple[str, ...]] = {"smollm2-135m-instruct": ()}
ALL_LANGUAGES: tuple[str, ...] = ("ja", "en")


@dataclass(frozen=True)
class GeneratorOptions:
    model: str | None = None                   # the upstream's model name (openai:)
    languages: tuple[str, ...] | None = None   # None: the generator's own (bundled) or both
    api_key: str | None = field(default=None, repr=False)
    threads: int = DEFAULT_THREADS             # llama.cpp threads (see llamacpp.py for why 1)
    token_timeout_s: float = 30.0              # upstream: longest wait for the first or next token


def generator_name(name: str | None) -> str | None:
    """The configured generator, or None when it is switched off ("none", "off" or empty)."""
    if name is None or name.strip().lower() in ("", "none", "off", "false"):
        return None
    return name


def check_generator(name: str | None, options: GeneratorOptions) -> None:
    """Refuse a configuration that cannot work, before anything loads."""
    name = generator_name(name)
    if name and name.startswith(PREFIX):
        if not name[len(PREFIX):].startswith(("http://", "https://")):
            raise InputError(f"--generator {name!r}: give the upstream as openai:http(s)://HOST[:PORT]/v1")
        if not options.model:
            raise InputError("--generator openai:… needs --generator-model (the upstream's model name)")
    for language in options.languages or ():
        if language not in ALL_LANGUAGES:
            raise InputError(f"--generator-languages: {language!r} is not one of {', '.join(ALL_LANGUAGES)}")


def auto_languages(name: str, options: GeneratorOptions) -> tuple[str, ...]:
    """The languages `auto` generates in with this generator, known without loading it."""
    if options.languages:
        return options.languages
    if name.startswith(PREFIX):
        return ALL_LANGUAGES
    return BUNDLED_LANGUAGES.get(locate_generator(name).name, ALL_LANGUAGES)


def load_any_generator(name: str, options: GeneratorOptions) -> TextGenerator:
    """The generator `name` names, on the runtime that runs it."""
    languages = auto_languages(name, options)
    if name.startswith(PREFIX):
        return OpenAIGenerator(UpstreamSettings(
            base_url=name[len(PREFIX):], model=options.model or "", api_key=options.api_key,
            languages=languages, token_timeout_s=options.token_timeout_s))
    folder, gguf = _gguf_location(name)
    if gguf is not None:
        return load_llamacpp(Path(folder) / gguf, name, languages, options.threads)
    generator = load_generator(name)
    generator.languages = languages
    return generator


def register_models(registry: ModelRegistry, qa_model: str | None, generator: str | None,
                    options: GeneratorOptions | None = None) -> None:
    """Register the answering models for lazy loading (nothing loads until first used)."""
    if qa_model:
        registry.register("qa", qa_model, partial(load_qa_reader, qa_model))
    if name := generator_name(generator):
        options = options or GeneratorOptions()
        registry.register("generator", name, partial(load_any_generator, name, options),
                          facts={"languages": auto_languages(name, options)})  # `auto` need not load it to ask
