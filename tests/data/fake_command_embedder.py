#!/usr/bin/env python3
"""A fake embedding model speaking embedapt's command: protocol (JSON lines).

Each text gets a deterministic 4-d vector: [len(bytes), 1 if query else 0,
sum(bytes) % 97, 1]. Flags make it misbehave so the tests can check errors:
  --log FILE        append one line per request (its number of texts)
  --exit-after N    exit with status 3 on request N+1 without answering
  --error-on TEXT   answer {"error": ...} when a request holds TEXT
  --garbage-on TEXT answer a line that is not JSON
  --short-on TEXT   answer one row too few
  --huge-on TEXT    answer a number too large for a float (1e300)
  --flood-on TEXT   answer 8 MB without a newline, then hang (to be killed)
  --hang-file FILE  while FILE exists, sleep (to be killed) on a request
                    holding the text FILE contains
"""
import argparse
import json
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--log")
parser.add_argument("--exit-after", type=int, default=-1)
parser.add_argument("--error-on")
parser.add_argument("--garbage-on")
parser.add_argument("--short-on")
parser.add_argument("--huge-on")
parser.add_argument("--flood-on")
parser.add_argument("--hang-file")
args = parser.parse_args()


def vector(text, side):
    data = text.encode("utf-8")
    return [len(data), 1 if side == "query" else 0, sum(data) % 97, 1]


served = 0
for line in sys.stdin:
    request = json.loads(line)
    texts = request["texts"]
    if served == args.exit_after:
        sys.exit(3)
    served += 1
    if args.log:
        with open(args.log, "a") as log:
            log.write(f"{len(texts)}\n")
    if args.hang_file and os.path.exists(args.hang_file):
        with open(args.hang_file) as f:
            if f.read() in texts:
                time.sleep(600)
    if args.error_on in texts:
        reply = {"error": "cannot embed " + args.error_on}
    elif args.flood_on in texts:
        sys.stdout.write("[" * (8 << 20))
        sys.stdout.flush()
        time.sleep(600)
    elif args.garbage_on in texts:
        print("this is not json", flush=True)
        continue
    else:
        rows = [vector(t, request["side"]) for t in texts]
        if args.huge_on in texts:
            rows[texts.index(args.huge_on)][0] = 1e300
        reply = {"embeddings": rows[:-1] if args.short_on in texts else rows}
    print(json.dumps(reply), flush=True)
