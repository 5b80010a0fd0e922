"""The ceiling: a full fine-tune of the base model with sentence-transformers.

  finetune.py --model DIR --dataset F --out DIR [--epochs 2] [--batch-size 10] [--timing F]

Trains every weight of the model on the dataset's (query, relevant chunk) pairs
with MultipleNegativesRankingLoss (in-batch negatives), AdamW at lr 2e-5 with a
linear warm-up over the first 10% of steps, as LlamaIndex's
SentenceTransformersFinetuneEngine does. The output directory is the base model's
with new weights: fine-tuning changes no tokenizer, pooling or config file, so those
are copied as they are and `embedapt --embedder bert:DIR` loads the result.
"""

import argparse
import json
import os
import random
import resource
import shutil
import sys
import time

import torch
import transformers
from sentence_transformers import SentenceTransformer
from safetensors.torch import load_file, save_file
from sentence_transformers.losses import MultipleNegativesRankingLoss

WEIGHTS = "model.safetensors"


def pairs_of(dataset_path: str) -> list:
    with open(dataset_path) as f:
        data = json.load(f)
    return [(text, data["corpus"][data["relevant_docs"][qid][0]]) for qid, text in data["queries"].items()]


def save_model_dir(model: SentenceTransformer, base_dir: str, out_dir: str) -> None:
    """The base directory with the trained weights in place of its own; tensors
    the training does not own (buffers such as position_ids) keep their base values."""
    shutil.copytree(base_dir, out_dir, ignore=shutil.ignore_patterns(WEIGHTS), dirs_exist_ok=True)
    tensors = load_file(os.path.join(base_dir, WEIGHTS))
    for name, value in model[0].auto_model.state_dict().items():
        if name not in tensors:
            raise SystemExit(f"finetune: {base_dir}/{WEIGHTS} has no tensor {name}: not the trained model's base")
        tensors[name] = value.detach().contiguous()
    save_file(tensors, os.path.join(out_dir, WEIGHTS), metadata={"format": "pt"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="base model directory")
    parser.add_argument("--dataset", required=True, help="EmbeddingQAFinetuneDataset JSON to train on")
    parser.add_argument("--out", required=True, help="directory for the fine-tuned model")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing", help="JSON file for the training time (wall, CPU)")
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = SentenceTransformer(args.model, device="cpu")
    pairs = pairs_of(args.dataset)

    wall0 = time.perf_counter()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    loss_fn = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    steps = args.epochs * ((len(pairs) + args.batch_size - 1) // args.batch_size)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    model.train()
    for _ in range(args.epochs):
        random.shuffle(pairs)
        for start in range(0, len(pairs), args.batch_size):
            batch = pairs[start : start + args.batch_size]
            features = [model.tokenize([q for q, _ in batch]), model.tokenize([d for _, d in batch])]
            loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    model.eval()
    wall = time.perf_counter() - wall0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime

    save_model_dir(model, args.model, args.out)
    if args.timing:
        with open(args.timing, "w") as f:
            json.dump({"wall_s": wall, "cpu_s": cpu, "pairs": len(pairs), "epochs": args.epochs}, f)


if __name__ == "__main__":
    sys.exit(main())
