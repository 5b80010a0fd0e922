#!/usr/bin/env python3
"""Writes the golden fixture for the C++ BERT encoder: for ~50 texts chosen to
exercise every tokenizer rule, the token ids sentence-transformers feeds the
model and the vectors it returns, for the query side and the document side.

    make_golden.py MODEL_DIR OUT_DIR

OUT_DIR/golden.json: {"model", "max_seq_length", "texts": [{"text", "ids"}]}
OUT_DIR/query.npy, OUT_DIR/document.npy: float32 [len(texts), dim]
"""
import json
import os
import sys

import numpy as np
from sentence_transformers import SentenceTransformer
from transformers import BertTokenizer

FILING = (
    "Uber's revenue grew 57% year-over-year to $17.5 billion in 2021, driven by Delivery; "
    "Mobility gross bookings recovered as COVID-19 restrictions eased (see Note 2). "
)

TEXTS = [
    "",
    " ",
    "\t\n  \r\n ",
    "hello",
    "Hello, World!",
    "What was Uber's total revenue in 2021?",
    "How many drivers and couriers used the platform on average each month?",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "café naïve résumé façade coöperate Ångström",
    "Crème brûlée à la française, s'il vous plaît.",
    "Straße, Größe, Übermaß, ÄÖÜ äöü ß",
    "İstanbul ıi İI — Turkish dotted and dotless i",
    "Ελληνικά: ΟΔΟΣ, Αθήνα, άλφα βήτα γάμμα",
    "Русский текст: Ёлка, ЙОД, щёки",
    "中文分词测试：我们的收入增长了。",
    "日本語のテキストとカタカナ、ひらがな",
    "한국어 텍스트: 안녕하세요 세계",
    "Mixed 中文 and English, 2021年收入",
    "العربية: مرحبا بالعالم",
    "עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया",
    "ไทย: สวัสดีชาวโลก",
    "Emoji 😀🚗🍔 and ❤️ hearts 👍🏽 flags 🇺🇸",
    "Punctuation!!! ??? ... --- ((nested)) [brackets] {braces} <angle>",
    "Quotes: “smart” ‘single’ «guillemets» „low“ and ‹angles›",
    "Dashes – — ‐ and ellipsis … and bullets • · ‧",
    "Symbols: $100, €50, £30, ¥2000, 50%, #hashtag, @user, a&b, x^2, ~tilde, `code`",
    "Math: ∑ ∫ √ ≤ ≥ ≠ ± × ÷ ∞ α β",
    "URL https://www.uber.com/us/en/about/?q=10-K&year=2021#section-1",
    "email investor.relations@uber.com, phone +1 (415) 612-8582",
    "Numbers 1,234,567.89 and 3.14159 and 1e-10 and 0x1F",
    "Don't won't can't shouldn't I'm you're it's",
    "snake_case_identifier camelCaseIdentifier kebab-case-identifier",
    "Combining marks: e\u0301 a\u0300 o\u0308 n\u0303 (decomposed input)",
    "Zero\u200bwidth\u200cjoiners\u200dhere and soft\u00adhyphen",
    "Non\u00a0breaking\u2003em space\u3000ideographic space",
    "Control\x00chars\x01and\x07bell\x1b[0m escape \x7f delete",
    "Line\u2028separator and paragraph\u2029separator",
    "Fullwidth ＡＢＣ　１２３ and halfwidth ｶﾀｶﾅ",
    "Ligatures ﬁ ﬂ and superscripts x² H₂O ½",
    "a" * 101 + " after an overlong word",
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "supercalifragilisticexpialidocious unbelievably tokenization",
    "Uber Technologies, Inc. (NYSE: UBER) — Form 10-K for the fiscal year ended December 31, 2021",
    "Risk Factors\n\nWe have incurred significant losses since inception.\n\n\nItem 1A.",
    "Represent this sentence for searching relevant passages: what is mobility?",
    FILING * 8,
    (FILING * 25).upper(),
    "   leading and trailing spaces   ",
    "x",
]


def main():
    model_dir, out_dir = sys.argv[1], sys.argv[2]
    model = SentenceTransformer(model_dir, device="cpu")
    slow = BertTokenizer.from_pretrained(model_dir)
    max_len = model.max_seq_length

    records = []
    for text in TEXTS:
        ids = model.preprocess([text])["input_ids"][0].tolist()
        slow_ids = slow(text, truncation=True, max_length=max_len)["input_ids"]
        if ids != slow_ids:
            print(f"note: fast and slow tokenizers differ on {text[:40]!r}", file=sys.stderr)
        records.append({"text": text, "ids": ids})

    prompts = model.prompts or {}
    query = model.encode(TEXTS, prompt=prompts.get("query") or None, batch_size=16,
                         convert_to_numpy=True)
    document = model.encode(TEXTS, prompt=prompts.get("document") or None, batch_size=16,
                            convert_to_numpy=True)

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump({"model": os.path.basename(os.path.normpath(model_dir)), "max_seq_length": max_len,
                   "texts": records}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    np.save(os.path.join(out_dir, "query.npy"), query.astype(np.float32))
    np.save(os.path.join(out_dir, "document.npy"), document.astype(np.float32))
    print(f"golden: {len(TEXTS)} texts, dim {query.shape[1]}, prompts {prompts} -> {out_dir}")


if __name__ == "__main__":
    main()
