"""PEFT-library methods (LoRA, DoRA, AdaLoRA, IA3, LoHa, LoKr, prefix and prompt tuning) behind one class.

Each ``conf/peft/<method>.yaml`` names the method and its options; the options go straight to the
peft config class, so every knob peft documents is a config key (``model.peft.r=16``).
Target modules are resolved per architecture from peft's own tables (BERT: query/value, Llama:
q_proj/v_proj, ...) unless ``target_modules`` overrides them; names that match nothing fail with
the backbone's real module names. The task head is put in ``modules_to_save`` so it always trains;
``modules_to_save`` in the config adds modules that train fully beside it (``[pooler]``).
"""

from __future__ import annotations

import re

from torch import nn

from tunelab.errors import TunelabError, did_you_mean
from tunelab.tuning import parts
from tunelab.tuning.method import TuningMethod

# method -> (peft config class, the peft constant that maps model_type -> target modules)
METHODS = {
    "lora": ("LoraConfig", "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING"),
    "adalora": ("AdaLoraConfig", "TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING"),
    "ia3": ("IA3Config", "TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING"),
    "loha": ("LoHaConfig", "TRANSFORMERS_MODELS_TO_LOHA_TARGET_MODULES_MAPPING"),
    "lokr": ("LoKrConfig", "TRANSFORMERS_MODELS_TO_LOKR_TARGET_MODULES_MAPPING"),
    "prefix_tuning": ("PrefixTuningConfig", None),
    "prompt_tuning": ("PromptTuningConfig", None),
}
# prompt-learning methods need to know the head: peft routes the virtual tokens per task type
TASK_TYPES = {
    "ForSequenceClassification": "SEQ_CLS",
    "ForTokenClassification": "TOKEN_CLS",
    "ForQuestionAnswering": "QUESTION_ANS",
    "ForCausalLM": "CAUSAL_LM",
    "ForConditionalGeneration": "SEQ_2_SEQ_LM",
    "EncoderDecoderModel": "SEQ_2_SEQ_LM",
}


def _model_types(model: nn.Module) -> list[str]:
    config = getattr(model, "config", None)
    types = [getattr(config, "model_type", None)]
    types += [getattr(getattr(config, side, None), "model_type", None) for side in ("encoder", "text_config")]
    return [t for t in types if t]


def module_names(model: nn.Module) -> list[str]:
    """Short names of the layers an adapter can target (last name component, sorted)."""
    leaves = {
        n.rsplit(".", 1)[-1]
        for n, m in model.named_modules()
        if n and (isinstance(m, (nn.Linear, nn.Embedding, nn.Conv1d)) or type(m).__name__ == "Conv1D")
    }
    return sorted(n for n in leaves if n and not n.isdigit())


def resolve_targets(model: nn.Module, method: str, targets, mapping_name: str | None):
    """The target modules for ``model``: the override, or peft's table entry for its model type."""
    import peft.utils.constants as constants

    names = [n for n, _ in model.named_modules() if n]
    if targets is None:
        mapping = getattr(constants, mapping_name, {}) if mapping_name else {}
        found = next((mapping[t] for t in _model_types(model) if t in mapping), None)
        if found is None:
            raise TunelabError(
                f"peft={method}: tunelab does not know which modules to adapt in a {_model_types(model) or type(model).__name__} "
                f"model. Name them: model.peft.target_modules=[...]; this backbone's layers are {module_names(model)}."
            )
        return list(found)
    if isinstance(targets, str):  # peft reads a string as a regex over full module names
        if not any(re.fullmatch(targets, n) for n in names):
            raise TunelabError(
                f"model.peft.target_modules='{targets}' (a regex) matches no module of the backbone. "
                f"Its layers are {module_names(model)}."
            )
        return targets
    targets = list(targets)
    for target in targets:
        if not any(n == target or n.endswith("." + target) for n in names):
            raise TunelabError(
                f"model.peft.target_modules: '{target}' is not a module of the {(_model_types(model) or [type(model).__name__])[0]} backbone."
                f" Its layers are {module_names(model)}; "
                f"{parts.describe(model)}. Set model.peft.target_modules to some of these, or null for the default."
            )
    return targets


def task_type(model: nn.Module, method: str) -> str:
    name = type(model).__name__
    found = next((t for suffix, t in TASK_TYPES.items() if name.endswith(suffix)), None)
    if found is None:
        raise TunelabError(
            f"peft={method} cannot serve the head {name}: peft's prompt methods insert virtual tokens only into "
            f"sequence classification, token classification, question answering, causal LM and seq2seq models "
            f"({', '.join('*' + s for s in TASK_TYPES)}). Use peft=lora, which works with any head."
        )
    return found


class PeftMethod(TuningMethod):
    """One peft method; ``options`` are the peft config's own keys (r, lora_alpha, use_dora, ...)."""

    has_adapter = True

    def __init__(self, method: str, target_modules: list[str] | str | None = None, **options):
        if method not in METHODS:
            raise TunelabError(
                f"Unknown peft method '{method}'.{did_you_mean(method, METHODS)} Known: {sorted(METHODS)} (conf/peft/)."
            )
        self.name = method
        self.target_modules = (
            list(target_modules)
            if isinstance(target_modules, (list, tuple))
            or (target_modules is not None and not isinstance(target_modules, str))
            else target_modules
        )
        self.options = dict(options)

    @property
    def prompt_learning(self) -> bool:
        return METHODS[self.name][1] is None

    def peft_config(self, model: nn.Module):
        import peft

        config_class, mapping = METHODS[self.name]
        options = dict(self.options)
        if self.prompt_learning:
            options["task_type"] = task_type(model, self.name)
        else:
            options["target_modules"] = resolve_targets(model, self.name, self.target_modules, mapping)
            # the head always trains; modules_to_save in the config adds more (e.g. [pooler])
            extra = [m for m in (options.get("modules_to_save") or []) if m not in parts.head_names(model)]
            options["modules_to_save"] = (parts.head_names(model) + list(extra)) or None
            if self.name == "ia3" and "feedforward_modules" not in options:
                from peft.utils.constants import (
                    TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as ff,
                )

                feedforward = next((ff[t] for t in _model_types(model) if t in ff), [])
                options["feedforward_modules"] = [m for m in feedforward if m in options["target_modules"]]
            if self.name == "adalora":
                options.setdefault("total_step", 10**9)  # the real number is set in on_fit_start
        try:
            return getattr(peft, config_class)(**options)
        except (TypeError, ValueError) as err:
            raise TunelabError(
                f"peft={self.name}: invalid option ({err}). See conf/peft/{self.name}.yaml and "
                f"the peft docs for {config_class}."
            ) from err

    def apply(self, model: nn.Module) -> nn.Module:
        from peft import get_peft_model

        config = self.peft_config(model)
        try:
            return get_peft_model(model, config)
        except (ValueError, TypeError, AttributeError, NotImplementedError) as err:
            raise TunelabError(
                f"peft={self.name} could not be applied to {type(model).__name__}: "
                f"{str(err)[:400]}\n{parts.describe(model)}."
            ) from err

    # ---- AdaLoRA re-allocates its rank budget as training goes
    def on_fit_start(self, model, total_steps: int) -> None:
        if self.name == "adalora":
            config = model.peft_config["default"]
            if config.tinit >= total_steps - config.tfinal:
                raise TunelabError(
                    f"peft=adalora: tinit ({config.tinit}) + tfinal ({config.tfinal}) must be less than "
                    f"the {total_steps} optimizer steps of this run. Lower model.peft.tinit/tfinal."
                )
            config.total_step = total_steps

    def after_optimizer_step(self, model, step: int) -> None:
        if self.name == "adalora":
            model.base_model.update_and_allocate(step)

    # ---- export
    def merged(self, model: nn.Module) -> nn.Module:
        if self.prompt_learning:
            raise TunelabError(
                f"peft={self.name} adds virtual tokens, which cannot be merged into the weights. "
                "Export the adapter instead: `tunelab export RUN --out DIR --adapter`."
            )
        return model.merge_and_unload()

    def save_adapter(self, model: nn.Module, folder) -> None:
        model.save_pretrained(str(folder), safe_serialization=True)

    def __repr__(self) -> str:
        return f"PeftMethod({self.name!r}, target_modules={self.target_modules}, {self.options})"
