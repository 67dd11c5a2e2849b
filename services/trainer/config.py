"""The one knob set of a training run (TRL-style: a dataclass whose defaults work from 135M to 8B
students). It arrives as a google.protobuf.Struct, so every number comes in as a float; the one
settings mechanism (services.common.settings) coerces it by the field types and refuses an unknown
key, because a typo that silently trains with a default is worse than a refusal. The comment above a
field is its help in docs/settings.md."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidArgument
from services.common.settings import build_settings

SCHEDULES = ("linear", "cosine", "constant")
BATCHING = ("length-grouped", "packed")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# What "all-linear" resolves to: the projection names of Llama/Qwen/Gemma/SmolLM/Mistral blocks.
# The output head is left out on purpose (it is tied to the embeddings in small models).
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainingConfig:
    # --- what is trained
    # Train every weight instead of a LoRA adapter (needs far more memory; lr default 2e-5).
    full_finetune: bool = False
    # LoRA rank.
    lora_r: int = 16
    # LoRA scaling numerator (the update is scaled by lora_alpha / lora_r).
    lora_alpha: int = 32
    # Dropout on the LoRA branch.
    lora_dropout: float = 0.05
    # "all-linear" or a list of module names (e.g. ["q_proj", "v_proj"]).
    target_modules: str | list[str] = "all-linear"
    # --- how long
    # Passes over the training mix (a ceiling when early stopping is on).
    epochs: int = 3
    # > 0: stop after this many optimizer steps (overrides epochs for the schedule length).
    max_steps: int = 0
    # --- optimizer and schedule
    # None: 2e-4 for LoRA, 2e-5 for full fine-tuning.
    learning_rate: float | None = None
    # AdamW weight decay.
    weight_decay: float = 0.0
    # Gradient clipping norm (0: no clipping).
    max_grad_norm: float = 1.0
    # Share of the steps spent warming the learning rate up from 0.
    warmup_ratio: float = 0.05
    # Learning-rate schedule after warm-up: linear, cosine or constant.
    schedule: str = "linear"
    # --- batches
    # Examples per micro-batch.
    batch_size: int = 8
    # Micro-batches per optimizer step (per process).
    grad_accum: int = 1
    # Longest prompt + answer in tokens; longer examples are skipped (counted in the metrics).
    max_seq_len: int = 512
    # "length-grouped": examples of similar length share a batch (little padding, works with every
    # attention kernel); "packed": several examples per row with a block-diagonal causal mask.
    batching: str = "length-grouped"
    # --- what the student learns from (services/trainer/mix.py)
    # Share of each epoch's rows that are the task's seeds (when the request carries them): the
    # seeds are repeated to reach it, never fewer than once each. They are the only gold labels, so
    # a mix of hundreds of synthetic rows should not drown them; 0.25 gives 30 seeds beside 300
    # rows three passes per epoch (the seeds-only recipe in DESIGN.md converges in ~15 passes).
    seed_share: float = 0.25
    # Classification: weight of the teacher's label distribution (metadata.choice_probabilities)
    # against the row's hard label; 0 trains on hard labels only, 1 on the distribution only.
    soft_label_weight: float = 0.0
    # Soft labels below this teacher probability are left out (each costs a row).
    soft_label_min_probability: float = 0.05
    # --- evaluation and early stopping
    # Held out from the synthetic rows only (seeds always train); no split below 10 rows.
    eval_fraction: float = 0.1
    # Stop after this many epochs without an eval-loss improvement (0: never stop early).
    early_stopping_patience: int = 2
    # The eval-loss improvement that counts as one.
    early_stopping_min_delta: float = 0.0
    # Without an eval split: stop after this many epochs whose mean training loss fell by less than
    # train_loss_min_improvement (relative) below the best so far — "until the loss stops falling"
    # (0: never).
    train_loss_patience: int = 0
    # The relative training-loss improvement that counts as one (see train_loss_patience).
    train_loss_min_improvement: float = 0.01
    # --- checkpoints
    # Optimizer steps between checkpoints (0: none; a killed run then restarts from step 0).
    checkpoint_every_steps: int = 50
    # Checkpoints kept on disk (the newest ones).
    keep_checkpoints: int = 2
    # --- runtime
    # Seed of the batch plan, dropout and LoRA initialisation (the same seed gives the same run).
    seed: int = 42
    # auto (CUDA when present), cpu, cuda or cuda:N.
    device: str = "auto"
    # "auto": bfloat16 on CUDA (when supported), float32 on the CPU; "bfloat16" on the CPU autocasts (docs/trainer.md).
    dtype: str = "auto"
    # Recompute activations in the backward pass (less memory, ~30% slower).
    gradient_checkpointing: bool = False
    # dtype of the merged checkpoint ("auto": the training dtype on a GPU, float32 on the CPU).
    merged_dtype: str = "auto"
    # CPU threads for torch (0: leave torch's default).
    threads: int = 0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return 2e-5 if self.full_finetune else 2e-4

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise InvalidArgument(f"training config: {message}")

        need(self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}")
        need(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        need(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        need(self.epochs >= 1 or self.max_steps > 0, "epochs must be >= 1 (or set max_steps)")
        need(self.max_steps >= 0, f"max_steps must be >= 0, got {self.max_steps}")
        need(self.learning_rate is None or self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        need(self.schedule in SCHEDULES, f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.grad_accum >= 1, f"grad_accum must be >= 1, got {self.grad_accum}")
        need(self.max_seq_len >= 16, f"max_seq_len must be >= 16, got {self.max_seq_len}")
        need(self.batching in BATCHING, f"batching {self.batching!r} is not one of {', '.join(BATCHING)}")
        need(0.0 <= self.eval_fraction < 0.9, f"eval_fraction must be in [0, 0.9), got {self.eval_fraction}")
        need(self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0")
        need(0.0 <= self.seed_share < 1.0, f"seed_share must be in [0, 1), got {self.seed_share}")
        need(0.0 <= self.soft_label_weight <= 1.0, f"soft_label_weight must be in [0, 1], got {self.soft_label_weight}")
        need(0.0 <= self.soft_label_min_probability < 1.0,
             f"soft_label_min_probability must be in [0, 1), got {self.soft_label_min_probability}")
        need(self.train_loss_patience >= 0, "train_loss_patience must be >= 0")
        need(self.train_loss_min_improvement >= 0, "train_loss_min_improvement must be >= 0")
        need(self.checkpoint_every_steps >= 0, "checkpoint_every_steps must be >= 0 (0: no checkpoints)")
        need(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        need(self.device in DEVICES or self.device.startswith("cuda:"),
             f"device {self.device!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
        need(self.dtype in DTYPES, f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        need(self.merged_dtype in DTYPES, f"merged_dtype {self.merged_dtype!r} is not one of {', '.join(DTYPES)}")
        need(self.max_grad_norm >= 0, "max_grad_norm must be >= 0 (0: no clipping)")
        need(self.threads >= 0, "threads must be >= 0")
        if isinstance(self.target_modules, str):
            need(bool(self.target_modules), "target_modules is empty")
        else:
            need(bool(self.target_modules) and all(isinstance(m, str) and m for m in self.target_modules),
                 "target_modules must be 'all-linear' or a non-empty list of module names")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainingConfig:
        """Build from a request's config Struct (services.common.settings: numbers arrive as floats,
        int64 as strings; an unknown key is refused with the keys that exist)."""
        return build_settings(cls, data, where="training")


def merge_settings(task_training: dict[str, Any] | None, request_config: dict[str, Any] | None) -> TrainingConfig:
    """task.yaml's ``training`` section, overridden key by key by the request's config."""
    merged: dict[str, Any] = dict(task_training or {})
    merged.update(request_config or {})
    return TrainingConfig.from_dict(merged)


__all__ = ["ALL_LINEAR", "BATCHING", "SCHEDULES", "TrainingConfig", "merge_settings"]
