"""Loading a backbone by built-in name, local folder or Hugging Face Hub id, with clear errors.

"minilm", "mpnet"        -> the cached offline asset (``tunelab assets``; mpnet: ``tunelab assets mpnet``)
"/path/to/folder"        -> a local Hugging Face folder (config.json, weights, tokenizer)
"bert-base-uncased"      -> a Hub id (downloaded by transformers; needs the network)
"""

from __future__ import annotations

import os
from pathlib import Path

from tunelab.errors import TunelabError

# built-in backbone name -> asset name in tunelab.assets
BUILTIN_BACKBONES = {"minilm": "minilm", "mpnet": "mpnet", "smollm2": "smollm2-gguf"}
# built-in backbones shipped as GGUF: converted once into a plain Hugging Face folder in the cache
GGUF_BACKBONES = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf"}


def gguf_to_folder(name: str) -> Path:
    """The cached plain HF folder of a GGUF built-in backbone, converted on first use (~30 s).

    A GGUF-loaded model keeps a ``quantization_config`` and refuses ``save_pretrained``; rebuilding
    it from the config without that key and loading the (dequantized, fp32) weights does not.
    """
    import shutil
    import tempfile

    from tunelab.assets import asset_path, cache_dir

    folder = cache_dir() / "models" / name
    if (folder / "config.json").exists():
        return folder
    source, file = asset_path(BUILTIN_BACKBONES[name]), GGUF_BACKBONES[name]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {source / file} into {folder} (once)")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=file)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=file)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(folder)  # atomic: a half-written folder is never picked up
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve_backbone(name: str) -> str:
    """A path or Hub id that ``from_pretrained`` understands."""
    name = str(name)
    if name in GGUF_BACKBONES:
        return str(gguf_to_folder(name))
    if name in BUILTIN_BACKBONES:
        from tunelab.assets import asset_path

        return str(asset_path(BUILTIN_BACKBONES[name]))
    path = Path(name).expanduser()
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1
    if path.exists():
        if not (path / "config.json").exists():
            raise TunelabError(
                f"Backbone folder '{name}' has no config.json, so it is not a Hugging Face model folder. "
                "Point model.backbone at a folder written by save_pretrained (or tunelab export)."
            )
        return str(path)
    if looks_local:
        raise TunelabError(
            f"Backbone '{name}' is neither an existing folder nor a Hub id (org/name). "
            f"Check model.backbone; built-in names are {sorted(BUILTIN_BACKBONES)}."
        )
    return name


def check_remote_code(name: str, resolved: str, trust_remote_code: bool) -> None:
    """Refuse a local folder whose architecture exists only as its own Python code, unless trusted."""
    import json

    config = Path(resolved) / "config.json"
    if trust_remote_code or not config.is_file():
        return
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise TunelabError(
            f"Backbone '{name}': {config} is not valid JSON ({err}). Re-export the model folder."
        ) from None
    from transformers import CONFIG_MAPPING

    if data.get("auto_map") and data.get("model_type") not in CONFIG_MAPPING:
        raise TunelabError(
            f"Backbone '{name}' ({data.get('model_type')}) ships its own modelling code ({config} has an auto_map). "
            "tunelab runs such code only when asked: set model.trust_remote_code=true if you trust its author."
        )


def _corrupt_weights(name: str, resolved: str, err: Exception) -> TunelabError:
    return TunelabError(
        f"The weights of backbone '{name}' in {resolved} cannot be read ({type(err).__name__}: {str(err)[:200]}). "
        "The file is truncated or corrupt: copy or export the model folder again."
    )


def _explain_load_error(name: str, resolved: str, err: Exception, what: str) -> TunelabError:
    text = f"{type(err).__name__}: {err}"
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if resolved == name and not Path(name).exists():  # a Hub id
        hint = (
            "HF_HUB_OFFLINE is set, so nothing is downloaded: unset it, or use a local folder or a built-in "
            f"backbone ({', '.join(BUILTIN_BACKBONES)})."
            if offline
            else "Check the spelling of the Hub id and your network; for a private model log in with "
            "`hf auth login`. Offline, use a local folder or a built-in backbone "
            f"({', '.join(BUILTIN_BACKBONES)})."
        )
        return TunelabError(
            f"Could not load the {what} of backbone '{name}' from the Hugging Face Hub.\n{hint}\n({text[:600]})"
        )
    if "trust_remote_code" in text:
        return TunelabError(
            f"Backbone '{name}' ships its own modelling code. tunelab runs such code only when asked: "
            f"set model.trust_remote_code=true if you trust its author.\n({text[:400]})"
        )
    return TunelabError(f"Could not load the {what} of backbone '{name}' ({resolved}).\n({text[:800]})")


def load_tokenizer(name: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    resolved = resolve_backbone(name)
    check_remote_code(name, resolved, trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise _explain_load_error(name, resolved, err, "tokenizer") from err
    if tokenizer.pad_token is None:  # decoder-only tokenizers often have none; dynamic padding needs one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    auto_class,
    name: str,
    config_overrides: dict | None = None,
    trust_remote_code: bool = False,
    pretrained: bool = True,
    dropout: dict | None = None,
    **kwargs,
):
    """Load ``auto_class`` from a backbone. ``pretrained=False`` builds it from the config alone
    (fast, for when a checkpoint's weights are loaded right after)."""
    from transformers import AutoConfig

    resolved = resolve_backbone(name)
    check_remote_code(name, resolved, trust_remote_code)
    try:
        config = AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as err:
        raise _explain_load_error(name, resolved, err, "config") from err
    overrides = dict(config_overrides or {})
    overrides.update(dropout_overrides(config, **(dropout or {})))
    for key, value in overrides.items():
        setattr(config, key, value)
    try:
        if pretrained:
            return auto_class.from_pretrained(resolved, config=config, trust_remote_code=trust_remote_code, **kwargs)
        return auto_class.from_config(config, trust_remote_code=trust_remote_code, **kwargs)
    except Exception as err:
        if type(err).__name__ == "SafetensorError" or "deserializ" in str(err).lower():
            raise _corrupt_weights(name, resolved, err) from None
        if isinstance(err, ValueError) and "Unrecognized configuration class" in str(err):
            raise TunelabError(
                f"Backbone '{name}' ({config.model_type}) has no {auto_class.__name__.replace('AutoModelFor', '')} "
                f"head in transformers. Choose another task or backbone.\n({str(err)[:300]})"
            ) from err
        if isinstance(err, (OSError, ValueError, KeyError, RuntimeError)):
            raise _explain_load_error(name, resolved, err, "weights") from err
        raise


def dropout_overrides(config, hidden: float | None = None, attention: float | None = None) -> dict:
    """Map hidden/attention dropout onto whichever attribute names this architecture uses."""
    names = {
        "hidden": ("hidden_dropout_prob", "hidden_dropout", "dropout", "resid_pdrop", "dropout_rate"),
        "attention": ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop"),
    }
    out = {}
    for kind, value in (("hidden", hidden), ("attention", attention)):
        if value is None:
            continue
        if not 0.0 <= value < 1.0:
            raise TunelabError(f"model.dropout.{kind} must be in [0, 1), got {value}.")
        hits = [n for n in names[kind] if hasattr(config, n)]
        if not hits:
            raise TunelabError(f"model.dropout.{kind}: the {config.model_type} config has none of {names[kind]}.")
        out.update({n: value for n in hits})
    return out
