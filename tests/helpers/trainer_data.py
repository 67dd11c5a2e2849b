"""A tiny real sentiment task for the trainer's tests and benchmark: short product and service
reviews, two labels. Train and held-out sentences are disjoint."""

from __future__ import annotations

import json
from pathlib import Path

from services.common.taskspec import TaskSpec

SPEC = TaskSpec(name="review-sentiment", type="classification",
                description="Classify the sentiment of a customer review.", labels=["positive", "negative"])

POSITIVE = [
    "The battery lasts all day and charges quickly.",
    "Friendly staff and the food arrived hot.",
    "I love how light and comfortable these shoes are.",
    "Setup took two minutes and it worked perfectly.",
    "Great value for the price, would buy again.",
    "The hotel room was spotless and the view was amazing.",
    "Customer support solved my problem on the first call.",
    "This blender crushes ice like a champ.",
    "The book kept me hooked until the last page.",
    "Delivery was early and the packaging was neat.",
    "Sound quality on these headphones is superb.",
    "My kids adore this game and play it every day.",
    "The coffee is rich and smooth, exactly what I wanted.",
    "Fantastic fit, the jacket keeps me warm in the snow.",
    "The app is fast, clean and easy to use.",
    "Our waiter was attentive and the dessert was delicious.",
    "Excellent camera, the photos look sharp and vivid.",
    "The mattress is so comfortable that I sleep through the night.",
    "Quick refund and a polite apology, very impressed.",
    "The garden tools feel sturdy and well made.",
    "Beautiful colors and the fabric feels soft.",
    "The tour guide was funny and knew everything.",
    "Works exactly as described, five stars.",
    "The vacuum picks up pet hair effortlessly.",
    "Wonderful little cafe with the best croissants in town.",
    "The keyboard feels great and the keys are quiet.",
    "Installation was simple and the instructions were clear.",
    "I am thrilled with how bright this lamp is.",
    "Such a cozy blanket, I use it every evening.",
    "The movie was touching and beautifully shot.",
]
NEGATIVE = [
    "The battery died after one hour.",
    "Cold food and a rude waiter, never again.",
    "These shoes gave me blisters on the first day.",
    "It stopped working after a week.",
    "Overpriced and cheaply made, a waste of money.",
    "The hotel room smelled of smoke and the sheets were stained.",
    "Support kept me on hold for an hour and hung up.",
    "The blender leaks every time I use it.",
    "The plot was boring and I gave up halfway.",
    "The package arrived late and the box was crushed.",
    "These headphones crackle and hurt my ears.",
    "The game crashes constantly and my kids are upset.",
    "The coffee tastes burnt and bitter.",
    "The zipper broke the second time I wore the jacket.",
    "The app freezes and logs me out all the time.",
    "We waited forty minutes and the soup was cold.",
    "Blurry photos and the lens cap does not fit.",
    "The mattress sags in the middle and my back hurts.",
    "They refused my refund and ignored my emails.",
    "The shovel bent the first time I used it.",
    "The colors faded after one wash.",
    "The tour guide was late and seemed bored.",
    "Nothing like the description, very disappointing.",
    "The vacuum is loud and barely picks anything up.",
    "Stale pastries and dirty tables at this cafe.",
    "Several keys stick and the keyboard rattles.",
    "Missing screws and the instructions made no sense.",
    "The lamp flickers and buzzes all night.",
    "The blanket sheds fluff everywhere.",
    "The movie was dull and far too long.",
]
HELD_OUT = [
    ("The charger works great and the cable is long.", "positive"),
    ("Lovely staff, tasty pizza, we will come back.", "positive"),
    ("The backpack is roomy and feels very durable.", "positive"),
    ("Amazing speaker, the bass is deep and clear.", "positive"),
    ("The tent kept us dry during a heavy storm.", "positive"),
    ("The printer jams on every single page.", "negative"),
    ("The soup was salty and the bread was stale.", "negative"),
    ("The phone case cracked after a small drop.", "negative"),
    ("Terrible service, the clerk ignored us.", "negative"),
    ("The chair wobbles and one leg is shorter.", "negative"),
]


def train_rows() -> list[dict[str, str]]:
    rows = []
    for pos, neg in zip(POSITIVE, NEGATIVE):
        rows.append({"input": pos, "output": "positive"})
        rows.append({"input": neg, "output": "negative"})
    return rows


def write_train(path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in train_rows()))
    return path


def student_path(model_cache: Path | None) -> Path:
    """The default student as a local safetensors checkpoint (DISTILLERY_TEST_STUDENT_DIR
    points the trainer tests at another local checkpoint instead)."""
    import os

    override = os.environ.get("DISTILLERY_TEST_STUDENT_DIR")
    if override:
        return Path(override)
    from services.common.catalog import resolve_model

    return Path(resolve_model("smollm2-135m-instruct", model_cache))


def classify(model_dir: Path, texts: list[str]) -> list[str]:
    """Greedy answers of the checkpoint at ``model_dir`` through the serving prompt format."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.common.student_format import parse_answer, render_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True).eval()
    prompts = [render_prompt(tokenizer, SPEC, text) for text in texts]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    completions = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=False)
    return [parse_answer(SPEC, text) for text in completions]
