"""The training loop: a compact SFT loop (TRL-style) with answer-only loss, gradient
accumulation, warmup + schedule, an eval split scored each epoch, early stopping, atomic
checkpoints and exact resume.

Exact resume: the batch plan is a pure function of (seed, epoch), the checkpoint holds the
trainable weights, the optimizer, the scheduler, the torch RNG states and the position in the
plan, so a run killed with ``kill -9`` and restarted ends where an uninterrupted run ends.

Loss normalisation: the loss of one optimizer step is (sum of token losses over all its
micro-batches, on all ranks) ÷ (answer tokens in them), the same whatever grad_accum or world size,
so examples with long answers weigh per token, not per batch."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from services.common.errors import Cancelled, FailedPrecondition, InvalidArgument, UnsafeModelError
from services.common.taskspec import Example, TaskSpec
from services.trainer.checkpoint import latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from services.trainer.config import ALL_LINEAR, TrainingConfig
from services.trainer.data import (
    IGNORE,
    Batch,
    Encoded,
    collate,
    count_answer_tokens,
    encode_all,
    padded_tokens,
    plan_epoch,
)
from services.trainer.devices import Runtime
from services.trainer.mix import TrainingMix, build_mix

log = logging.getLogger(__name__)

# Architectures whose logits are exactly lm_head(last hidden state) (up to Gemma's soft-capping,
# applied below): for these the loss computes logits only at answer positions, which skips most of
# the vocabulary projection on classification-style data. Others take the plain forward.
_FAST_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "smollm3", "phi3"})


@dataclass
class StepInfo:
    step: int
    total_steps: int
    epoch: int
    epochs: int
    loss: float
    learning_rate: float
    tokens_per_second: float
    eta_seconds: float


class Callbacks:
    """Hooks of the loop; the default does nothing. Only rank 0 calls them."""

    def on_step(self, info: StepInfo) -> None:
        pass

    def on_eval(self, epoch: float, step: int, eval_loss: float) -> None:
        pass

    def on_checkpoint(self, path: Path, step: int) -> None:
        pass

    def should_stop(self) -> bool:
        return False


@dataclass
class TrainOutcome:
    model: nn.Module
    tokenizer: Any
    runtime: Runtime
    steps: int
    final_train_loss: float
    final_eval_loss: float | None
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
def check_safetensors(model_dir: Path) -> None:
    """Weights load from safetensors only: a directory with pickle weights and no safetensors is
    refused before transformers is asked to open it."""
    if not model_dir.is_dir():
        raise FailedPrecondition(f"student model directory {model_dir} does not exist")
    if not any(model_dir.glob("*.safetensors")):
        pickles = sorted(p.name for p in model_dir.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
        if pickles:
            raise UnsafeModelError(f"{model_dir} holds pickle weights ({', '.join(pickles)}) and no .safetensors; "
                                   "convert it to safetensors first (pickle files are never loaded)")
        raise FailedPrecondition(f"{model_dir} holds no .safetensors weights")


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    if tokenizer.chat_template is None:
        raise FailedPrecondition(f"{model_dir}: the tokenizer has no chat template; the student prompt format needs one")
    if tokenizer.eos_token is None:
        raise FailedPrecondition(f"{model_dir}: the tokenizer has no eos token; answers could never end")
    return tokenizer


def resolve_target_modules(model: nn.Module, wanted: str | Sequence[str]) -> list[str]:
    """"all-linear" → the usual projection names present in this model (falling back to every
    linear layer but the output head, for architectures with other names)."""
    present = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    if isinstance(wanted, str) and wanted != "all-linear":
        wanted = [wanted]
    if isinstance(wanted, str):
        found = [name for name in ALL_LINEAR if name in present]
        if found:
            return found
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        head_names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if m is head}
        found = sorted(present - head_names)
        if not found:
            raise FailedPrecondition("no linear layers found to attach LoRA to")
        return found
    missing = [name for name in wanted if name not in present]
    if missing:
        raise InvalidArgument(f"training config: target_modules {missing} are not in this model; "
                              f"its linear layers are: {', '.join(sorted(present))}")
    return list(wanted)


def load_student(model_dir: Path, config: TrainingConfig, runtime: Runtime) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForCausalLM

    check_safetensors(model_dir)
    tokenizer = load_tokenizer(model_dir)
    # LoRA keeps the frozen base in the compute dtype (bf16 on GPUs: half the memory) and peft
    # keeps the adapter in fp32; full fine-tuning keeps fp32 master weights and autocasts.
    load_dtype = torch.float32 if config.full_finetune else runtime.dtype
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=load_dtype, use_safetensors=True,
                                                 trust_remote_code=False, low_cpu_mem_usage=True)
    model.config.use_cache = False
    model.to(runtime.device)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if not config.full_finetune:
            model.enable_input_require_grads()
    torch.manual_seed(config.seed)  # the LoRA init is part of what a resume must reproduce
    if not config.full_finetune:
        from peft import LoraConfig, get_peft_model

        targets = resolve_target_modules(model, config.target_modules)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=targets, bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    return model, tokenizer


def causal_lm(model: nn.Module) -> nn.Module:
    """The transformers CausalLM inside a PeftModel (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class AnswerLoss(nn.Module):
    """Summed cross-entropy over answer tokens. Wrapping the model in one module keeps DDP's
    gradient hooks on the path even when the fast head path calls the decoder directly."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        lm = causal_lm(model)
        self._fast = (getattr(lm.config, "model_type", "") in _FAST_HEAD_TYPES
                      and callable(getattr(lm, "get_decoder", None)) and lm.get_output_embeddings() is not None)
        self._softcap = getattr(lm.config, "final_logit_softcapping", None)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
        targets = labels[:, 1:]
        mask = targets != IGNORE
        if self._fast:
            lm = causal_lm(self.model)
            hidden = lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                      use_cache=False).last_hidden_state
            logits = lm.get_output_embeddings()(hidden[:, :-1][mask])
            if self._softcap:
                logits = torch.tanh(logits / self._softcap) * self._softcap
        else:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                             use_cache=False)
            logits = out.logits[:, :-1][mask]
        if weights is None:
            return F.cross_entropy(logits.float(), targets[mask], reduction="sum")
        token_losses = F.cross_entropy(logits.float(), targets[mask], reduction="none")
        return (token_losses * weights[:, 1:][mask]).sum()


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
def _fingerprint(config: TrainingConfig, model_dir: Path, encoded: Sequence[Encoded], world_size: int) -> str:
    """What a checkpoint must match to be resumed: the run's config (minus runtime-only knobs),
    the base model, the data, and the world size (it decides how batches are split)."""
    cfg = config.to_dict()
    for runtime_only in ("threads", "device", "checkpoint_every_steps", "keep_checkpoints", "merged_dtype"):
        cfg.pop(runtime_only, None)
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode())
    config_json = model_dir / "config.json"
    digest.update(config_json.read_bytes() if config_json.is_file() else str(model_dir).encode())
    for item in encoded:
        digest.update(json.dumps([item.input_ids, item.labels, item.weight]).encode())
    digest.update(str(world_size).encode())
    return digest.hexdigest()


def _trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int) -> Any:
    from transformers import get_scheduler

    warmup = int(math.ceil(config.warmup_ratio * total_steps))
    name = "constant_with_warmup" if config.schedule == "constant" else config.schedule
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def _move(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "tokens"}


def evaluate(loss_module: nn.Module, eval_set: Sequence[Encoded], config: TrainingConfig, pad_id: int,
             runtime: Runtime) -> float | None:
    """Mean per-token answer loss on the eval split (every rank scores it all: it is small)."""
    if not eval_set:
        return None
    loss_module.eval()
    total = 0.0
    tokens = 0.0
    lengths = [len(e) for e in eval_set]
    order = sorted(range(len(eval_set)), key=lambda i: -lengths[i])
    with torch.no_grad():
        for start in range(0, len(order), config.batch_size):
            batch: Batch = [[i] for i in order[start:start + config.batch_size]]
            tensors = collate(batch, eval_set, pad_id, packed=False)
            with torch.autocast(runtime.device.type, dtype=runtime.dtype, enabled=runtime.autocast):
                total += float(loss_module(**_move(tensors, runtime.device)))
            tokens += count_answer_tokens(batch, eval_set)
    loss_module.train()
    return total / max(tokens, 1)


@dataclass
class LoopState:
    """The run's progress, saved with every checkpoint (beside the weights, the optimizer, the
    scheduler and the RNG states) so that a restarted run continues exactly where it stopped."""

    fingerprint: str
    step: int = 0
    epoch: int = 0
    group: int = 0  # optimizer steps done in the current epoch
    tokens: int = 0
    elapsed: float = 0.0
    best_eval: float | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    best_train: float | None = None
    flat_epochs: int = 0
    stop_reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> LoopState:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in payload.items() if key in known})

    def record_eval_loss(self, value: float, config: TrainingConfig) -> None:
        """Early stopping on the eval split: stop once the eval loss has not improved by
        ``early_stopping_min_delta`` for ``early_stopping_patience`` epochs."""
        if config.early_stopping_patience <= 0:
            return
        if self.best_eval is None or value < self.best_eval - config.early_stopping_min_delta:
            self.best_eval, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= config.early_stopping_patience:
            self.stopped_early, self.stop_reason = True, "eval loss stopped improving"
            log.info("early stopping after epoch %d: eval loss did not improve for %d epoch(s)",
                     self.epoch, self.bad_epochs)

    def train_loss_plateaued(self, epoch: int, config: TrainingConfig) -> bool:
        """After epoch ``epoch``: has its mean training loss failed to beat the best epoch so far by
        ``train_loss_min_improvement`` (relative) for ``train_loss_patience`` epochs in a row?
        Updates the running best."""
        losses = [h["loss"] for h in self.history if h["epoch"] == epoch]
        if not losses:
            return False
        mean = sum(losses) / len(losses)
        if self.best_train is None or mean < self.best_train * (1.0 - config.train_loss_min_improvement):
            self.best_train, self.flat_epochs = mean, 0
            return False
        self.flat_epochs += 1
        return self.flat_epochs >= config.train_loss_patience

    def record_epoch_train_loss(self, epoch: int, config: TrainingConfig) -> None:
        """Without an eval split (the seed-only student trains on every seed), stop once the
        training loss has stopped falling: the step budget is a ceiling, convergence the goal."""
        if config.train_loss_patience > 0 and self.train_loss_plateaued(epoch, config):
            self.stopped_early, self.stop_reason = True, "training loss stopped falling"
            log.info("stopping after epoch %d: training loss fell by < %.0f%% for %d epoch(s)", epoch + 1,
                     100 * config.train_loss_min_improvement, self.flat_epochs)


@dataclass
class TrainData:
    """The encoded training mix and eval split of one run."""

    mix: TrainingMix
    train_set: list[Encoded]
    eval_set: list[Encoded]
    skipped_too_long: int
    truncated: int

    @property
    def lengths(self) -> list[int]:
        return [len(e) for e in self.train_set]


def prepare_data(tokenizer: Any, spec: TaskSpec, examples: Sequence[Example], seeds: Sequence[Example],
                 config: TrainingConfig) -> TrainData:
    """Mix the rows with the seeds (services.trainer.mix) and encode both splits."""
    mix = build_mix(spec, examples, seeds, config)
    train_set, stats = encode_all(tokenizer, spec, [w.example for w in mix.train], config.max_seq_len,
                                  [w.weight for w in mix.train])
    eval_set, eval_stats = encode_all(tokenizer, spec, mix.eval, config.max_seq_len)
    if len(train_set) < 2:
        raise InvalidArgument(f"only {len(train_set)} example(s) fit max_seq_len={config.max_seq_len} "
                              f"({stats.skipped_too_long} skipped as too long); need at least 2")
    return TrainData(mix, train_set, eval_set, stats.skipped_too_long + eval_stats.skipped_too_long,
                     stats.truncated + eval_stats.truncated)


class TrainingRun:
    """One run of the loop: the model, its optimizer and schedule, the progress, and the steps
    that move them — resume, one optimizer step, one epoch, the eval, a checkpoint."""

    def __init__(self, model: nn.Module, data: TrainData, config: TrainingConfig, runtime: Runtime,
                 callbacks: Callbacks, pad_id: int, fingerprint: str, work_dir: Path) -> None:
        self.data = data
        self.config = config
        self.runtime = runtime
        self.callbacks = callbacks
        self.pad_id = pad_id
        self.ckpt_root = work_dir / "checkpoints"
        self.world = runtime.world_size
        self.per_step = config.grad_accum * self.world  # micro-batches consumed by one optimizer step
        steps_per_epoch = [math.ceil(len(self.plan(e)) / self.per_step) for e in range(config.epochs)]
        self.total_steps = config.max_steps if config.max_steps > 0 else sum(steps_per_epoch)
        self.loss_module: nn.Module = AnswerLoss(model)
        self.trainable = _trainable(model)
        if not self.trainable:
            raise FailedPrecondition("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(list(self.trainable.values()), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scheduler = _make_scheduler(self.optimizer, config, self.total_steps)
        self.state = LoopState(fingerprint)
        self._step_times: deque[float] = deque(maxlen=20)

    def plan(self, epoch: int) -> list[Batch]:
        """The epoch's micro-batches: a pure function of (seed, epoch), which makes resume exact."""
        config = self.config
        return plan_epoch(self.data.lengths, config.batch_size, config.seed, epoch, config.batching,
                          config.max_seq_len)

    def resume(self) -> None:
        """Continue from the newest checkpoint in the work directory, if it is one of this run."""
        found = latest_checkpoint(self.ckpt_root)
        if found is None:
            return
        loaded = load_checkpoint(found)
        if loaded.state.get("fingerprint") != self.state.fingerprint:
            raise FailedPrecondition(
                f"{self.ckpt_root} holds checkpoints of a different run (other config, data, base model or world "
                "size); use a fresh work directory or delete it to start over")
        with torch.no_grad():
            for name, param in self.trainable.items():
                if name not in loaded.trainable:
                    raise FailedPrecondition(f"checkpoint {found.path} lacks parameter {name}")
                param.copy_(loaded.trainable[name].to(param.device, param.dtype))
        self.optimizer.load_state_dict(loaded.optimizer)
        self.scheduler.load_state_dict(loaded.state.pop("scheduler"))
        restore_rng(loaded.rng)
        self.state = LoopState.from_dict(loaded.state)
        self.state.resumed_from.append(found.step)
        log.info("resuming from checkpoint %s (step %d)", found.path, found.step)

    def wrap_distributed(self) -> None:
        if self.runtime.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            self.loss_module = DistributedDataParallel(self.loss_module, device_ids=device_ids)
        self.loss_module.train()

    def checkpoint(self) -> None:
        if self.config.checkpoint_every_steps <= 0:
            return
        if self.runtime.is_main:
            payload = self.state.to_dict()
            payload["scheduler"] = self.scheduler.state_dict()
            path = save_checkpoint(self.ckpt_root, self.state.step, self.trainable, self.optimizer, payload,
                                   self.config.keep_checkpoints)
            self.callbacks.on_checkpoint(path, self.state.step)
        self.runtime.barrier()

    def stop_requested(self) -> bool:
        """Whether any rank was asked to stop (rank 0 asks its callbacks; all ranks agree)."""
        flag = self.callbacks.should_stop() if self.runtime.is_main else False
        if self.runtime.distributed:
            tensor = torch.tensor([1.0 if flag else 0.0], device=self.runtime.device)
            dist.all_reduce(tensor)
            flag = bool(tensor.item())
        return flag

    def optimizer_step(self, group: list[Batch]) -> tuple[float, int]:
        """Forward and backward over the group's micro-batches (split over ranks), then one
        optimizer step; returns the step's loss per answer token and the tokens it saw."""
        runtime, train_set, world = self.runtime, self.data.train_set, self.world
        answer_tokens = sum(count_answer_tokens(b, train_set) for b in group)
        per_rank = math.ceil(len(group) / world)
        packed = self.config.batching == "packed"
        loss_sum = 0.0
        tokens = 0
        for k in range(per_rank):
            index = runtime.rank + k * world
            # a rank without a batch of its own in a short last group still joins the all-reduce
            batch, weight = (group[index], 1.0) if index < len(group) else (group[0], 0.0)
            tensors = collate(batch, train_set, self.pad_id, packed)
            sync = (not runtime.distributed or k == per_rank - 1)
            context = contextlib.nullcontext() if sync else self.loss_module.no_sync()
            with context:
                with torch.autocast(runtime.device.type, dtype=runtime.dtype, enabled=runtime.autocast):
                    summed = self.loss_module(**_move(tensors, runtime.device))
                # DDP averages gradients over ranks; × world turns that back into a sum
                (summed * (weight * world / max(answer_tokens, 1e-6))).backward()
            loss_sum += float(summed.detach()) * weight
            tokens += int(tensors["tokens"]) if weight else 0
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(list(self.trainable.values()), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if runtime.distributed:
            totals = torch.tensor([loss_sum, float(tokens)], device=runtime.device, dtype=torch.float64)
            dist.all_reduce(totals)
            loss_sum, tokens = float(totals[0]), int(totals[1])
        return loss_sum / max(answer_tokens, 1e-6), tokens

    def run_eval(self, epochs_done: float) -> float | None:
        module = self.loss_module.module if self.runtime.distributed else self.loss_module
        value = evaluate(module, self.data.eval_set, self.config, self.pad_id, self.runtime)
        if value is not None:
            self.state.eval.append({"epoch": epochs_done, "step": self.state.step, "eval_loss": value})
            if self.runtime.is_main:
                self.callbacks.on_eval(epochs_done, self.state.step, value)
        return value

    def run_epoch_steps(self, epoch: int, groups: list[list[Batch]], elapsed_before: float,
                        run_started: float) -> None:
        """The epoch's remaining optimizer steps, up to the step budget; checkpoints on schedule and
        raises Cancelled (after a checkpoint) when a stop is requested."""
        state, config = self.state, self.config
        while state.group < len(groups) and state.step < self.total_steps:
            t0 = time.time()
            loss, tokens = self.optimizer_step(groups[state.group])
            state.group += 1
            state.step += 1
            state.tokens += tokens
            dt = time.time() - t0
            self._step_times.append(dt)
            lr = float(self.scheduler.get_last_lr()[0])
            state.history.append({"step": state.step, "epoch": epoch, "loss": round(loss, 6), "lr": lr,
                                  "tokens": tokens})
            state.elapsed = elapsed_before + (time.time() - run_started)
            if self.runtime.is_main:
                mean_dt = sum(self._step_times) / len(self._step_times)
                self.callbacks.on_step(StepInfo(state.step, self.total_steps, epoch + 1,
                                                config.epochs if not config.max_steps else 0, loss, lr,
                                                tokens / dt if dt > 0 else 0.0,
                                                mean_dt * (self.total_steps - state.step)))
            if config.checkpoint_every_steps and state.step % config.checkpoint_every_steps == 0:
                self.checkpoint()
            if self.stop_requested():
                self.checkpoint()
                raise Cancelled(f"training stopped at step {state.step}/{self.total_steps}; "
                                "it resumes from the last checkpoint when restarted")

    def end_epoch(self, epoch: int) -> None:
        """Score the eval split and decide whether to stop early."""
        value = self.run_eval(epoch + 1)
        self.state.epoch = epoch + 1
        self.state.group = 0
        if value is not None:
            self.state.record_eval_loss(value, self.config)
        else:
            self.state.record_epoch_train_loss(epoch, self.config)

    def finished(self) -> bool:
        state = self.state
        return (state.step >= self.total_steps or state.stopped_early
                or (not self.config.max_steps and state.epoch >= self.config.epochs))

    def run(self) -> None:
        state = self.state
        run_started = time.time()
        elapsed_before = state.elapsed
        if state.step == 0 and not state.eval:
            self.run_eval(0)  # the base model's eval loss: the yardstick for "training helped"
        done = state.step >= self.total_steps or state.stopped_early
        while not done:
            epoch = state.epoch
            batches = self.plan(epoch)
            groups = [batches[i:i + self.per_step] for i in range(0, len(batches), self.per_step)]
            self.run_epoch_steps(epoch, groups, elapsed_before, run_started)
            epoch_done = state.group >= len(groups)
            if epoch_done:
                self.end_epoch(epoch)
            done = self.finished()
            if done and not epoch_done:
                self.run_eval(round(epoch + state.group / len(groups), 3))  # max_steps ended mid-epoch
            if epoch_done or done:
                self.checkpoint()

    def metrics(self, wall_started: float) -> dict[str, Any]:
        state, data = self.state, self.data
        real, padded = padded_tokens(self.plan(0), data.train_set)
        seconds = state.elapsed
        return {
            "steps": state.step, "total_steps": self.total_steps, "epochs_completed": state.epoch,
            "stopped_early": state.stopped_early, "stop_reason": state.stop_reason,
            "resumed_from_steps": state.resumed_from, "mix": data.mix.stats,
            "history": state.history, "eval": state.eval,
            "final_train_loss": self.final_train_loss(), "final_eval_loss": self.final_eval_loss(),
            "initial_eval_loss": state.eval[0]["eval_loss"] if state.eval else None,
            "train_examples": len(data.train_set), "eval_examples": len(data.eval_set),
            "skipped_too_long": data.skipped_too_long, "truncated": data.truncated,
            "tokens_trained": state.tokens, "tokens_per_second": state.tokens / seconds if seconds > 0 else 0.0,
            "padding_efficiency": real / padded if padded else 1.0,
            "trainable_parameters": sum(p.numel() for p in self.trainable.values()),
            "device": self.runtime.describe(), "config": self.config.to_dict(),
            "wall_seconds_this_run": time.time() - wall_started,
        }

    def final_train_loss(self) -> float:
        """Mean loss of the last ten steps (one step's loss is too noisy to report)."""
        window = self.state.history[-max(1, min(10, len(self.state.history))):]
        return sum(h["loss"] for h in window) / max(len(window), 1)

    def final_eval_loss(self) -> float | None:
        return self.state.eval[-1]["eval_loss"] if self.state.eval else None


def train(model_dir: Path, spec: TaskSpec, examples: Sequence[Example], config: TrainingConfig, work_dir: Path,
          runtime: Runtime, callbacks: Callbacks | None = None, seeds: Sequence[Example] = ()) -> TrainOutcome:
    """Fine-tune the student at ``model_dir`` on ``examples`` mixed with ``seeds`` (see
    services.trainer.mix); resume from ``work_dir`` if a checkpoint of the same run is there."""
    started = time.time()
    if config.threads:
        torch.set_num_threads(config.threads)
    model, tokenizer = load_student(model_dir, config, runtime)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    data = prepare_data(tokenizer, spec, examples, seeds, config)
    fingerprint = _fingerprint(config, model_dir, data.train_set + data.eval_set, runtime.world_size)
    run = TrainingRun(model, data, config, runtime, callbacks or Callbacks(), pad_id, fingerprint, work_dir)
    run.resume()
    run.wrap_distributed()
    run.run()
    return TrainOutcome(model, tokenizer, runtime, run.state.step, run.final_train_loss(), run.final_eval_loss(),
                        run.state.elapsed, run.metrics(started))
