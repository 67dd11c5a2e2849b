"""A tiny, real student for tests and demos of the serving path: a 2-layer Llama with a byte-level
BPE tokenizer and a ChatML chat template (the SmolLM2 layout), fine-tuned for a few LoRA steps with
peft on task examples in the student prompt format, merged, and saved as safetensors — the same
artifact shape the trainer hands to serving, small enough to export in seconds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.common.student_format import render_prompt
from services.common.taskspec import TaskSpec

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def make_tiny_base(out: Path, corpus: Sequence[str], vocab_size: int = 400, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(corpus) * 3, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                        bos_token="<|im_start|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    return out


def finetune(base: Path, out: Path, spec: TaskSpec, examples: Sequence[tuple[str, str]], steps: int = 200,
             lr: float = 3e-3, rank: int = 8, adapter_out: Path | None = None) -> Path:
    """A few LoRA steps on (input, output) pairs, rendered exactly as the trainer renders them
    (student_format prompt + output + eos), then merged and saved with safetensors."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, target_modules="all-linear", lora_dropout=0.0))
    rows = []
    for text, output in examples:
        prompt = tokenizer.encode(render_prompt(tokenizer, spec, text), add_special_tokens=False)
        answer = tokenizer.encode(output, add_special_tokens=False) + [tokenizer.eos_token_id]
        rows.append((prompt + answer, [-100] * len(prompt) + answer))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add contention
    torch.manual_seed(0)
    model.train()
    for step in range(steps):
        ids, labels = rows[step % len(rows)]
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    torch.set_num_threads(threads)
    model.eval()
    if adapter_out is not None:
        model.save_pretrained(str(adapter_out), safe_serialization=True)
    merged = model.merge_and_unload()
    out = Path(out)
    merged.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


SENTIMENT = TaskSpec(name="sentiment", type="classification",
                     description="Classify the sentiment of a product review.",
                     labels=["positive", "negative", "neutral"])
SENTIMENT_EXAMPLES = [
    ("I love this phone, the battery lasts forever", "positive"),
    ("Great value and fast delivery", "positive"),
    ("Excellent quality, would buy again", "positive"),
    ("The screen broke after two days", "negative"),
    ("Terrible support, never again", "negative"),
    ("It stopped working and the refund was refused", "negative"),
    ("It arrived on Tuesday", "neutral"),
    ("The box contains a charger and a cable", "neutral"),
    ("It is blue and weighs 200 grams", "neutral"),
]


def tiny_student(root: Path, spec: TaskSpec = SENTIMENT,
                 examples: Sequence[tuple[str, str]] = SENTIMENT_EXAMPLES, steps: int = 200) -> tuple[Path, Path]:
    """Build base → fine-tune → merged checkpoint. Returns (merged checkpoint dir, adapter dir)."""
    root = Path(root)
    corpus = [render_prompt_text(spec, text) + " " + output for text, output in examples]
    base = make_tiny_base(root / "base", corpus)
    adapter = root / "adapter"
    merged = finetune(base, root / "merged", spec, examples, steps=steps, adapter_out=adapter)
    return merged, adapter


def render_prompt_text(spec: TaskSpec, text: str) -> str:
    """Plain text of the system and user turns (for training the tiny tokenizer's merges)."""
    from services.common.student_format import chat_messages

    return "\n".join(m["content"] for m in chat_messages(spec, text)) + " " + " ".join(spec.labels)


def cached_tiny_student(cache_dir: Path) -> tuple[Path, Path]:
    """``tiny_student`` built once under ``cache_dir`` (deterministic: fixed seeds, one thread),
    shared by every test module and run; a ``.complete`` marker guards against a half-built one."""
    import shutil

    from filelock import FileLock

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / ".lock")):
        if not (cache_dir / ".complete").exists():
            for name in ("base", "adapter", "merged"):
                shutil.rmtree(cache_dir / name, ignore_errors=True)
            tiny_student(cache_dir)
            (cache_dir / ".complete").write_text("ok")
    return cache_dir / "merged", cache_dir / "adapter"
