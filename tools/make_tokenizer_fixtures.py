#!/usr/bin/env python3
"""Generates the tokenizer parity fixtures and the Unicode class table used by src/tokenizer.

Outputs (paths relative to the repository root):
  tests/data/tokenizer/smollm2_style.json   byte-level BPE shaped like SmolLM2 / SmolVLM2's tokenizer.json:
                                            no normalizer, Sequence[Digits(individual), ByteLevel(regex)],
                                            ByteLevel post-processor (no BOS), ByteLevel decoder
  tests/data/tokenizer/bos_template.json    same model; plain ByteLevel (GPT-2 digit runs), TemplateProcessing
                                            adding a BOS, merges in the legacy "a b" string form
  tests/data/tokenizer/split_variants.json  same model; Split(String, Removed) + Split(GPT-2 Regex, Isolated) +
                                            Digits(runs) + ByteLevel(use_regex=False, add_prefix_space=True),
                                            ignore_merges, no post-processor
  tests/data/tokenizer/bpe_unk_fallback.json  small BPE with unk_token + fuse_unk + byte_fallback (bytes < 0xE0
                                            only, so 3-/4-byte chars hit unk), Split(" ", Isolated) + Digits,
                                            no decoder (tokens joined with spaces)
  tests/data/tokenizer/bpe_affixes.json     small BPE with continuing_subword_prefix "##", end_of_word_suffix
                                            "</w>", unk without fusing, Split(" ", Removed)
  tests/data/tokenizer/expected.json        >= 2000 test strings and, per fixture, the ids from the Python
                                            `tokenizers` package with and without special tokens, decodes,
                                            and padded/truncated encodings for a subset
  src/tokenizer/unicode_classes.inc         compact code point range table (letter, number, whitespace,
                                            Rust is_numeric, word) probed from the same `tokenizers` build
  tests/data/tokenizer/gemma_style.json     SentencePiece-style BPE as Gemma / PaliGemma ship it: Replace(" ", "▁")
                                            normalizer, no pre-tokenizer, byte_fallback + fuse_unk, <bos> template,
                                            decoder Sequence[Replace("▁", " "), ByteFallback, Fuse]
  tests/data/tokenizer/llama2_style.json    Llama-2: Sequence[Prepend("▁"), Replace(" ", "▁")] normalizer, <s>
                                            template, decoder ... + Strip(" ", 1, 0)
  tests/data/tokenizer/metaspace_style.json Metaspace pre-tokenizer (prepend_scheme "first", split false) and
                                            Metaspace decoder (Llama-3-era SentencePiece conversions, Mistral)
  tests/data/tokenizer/metaspace_split.json Metaspace(prepend_scheme "always", split true)
  tests/data/tokenizer/qwen2_style.json     byte-level BPE as Qwen2 ships it: NFC normalizer, Split(Qwen2 regex,
                                            Isolated) + ByteLevel(use_regex=False), ByteLevel decoder
  src/tokenizer/unicode_nfc.inc             canonical decompositions, combining classes and compositions
                                            (Python unicodedata) for the NFC normalizer

`--only NAME[,NAME...]` regenerates those fixtures alone and merges them into expected.json, leaving
the other fixtures and the tables as committed.

Everything is generated from text this script writes itself (no downloads). Needs `pip install tokenizers`.
The BPE trainer breaks ties between equally frequent pairs in hash order, so a re-run can yield a
different (but self-consistent: the expectations are always computed from the files as written)
vocabulary, mostly for the small models; commit the outputs of one run together.
Run from anywhere: python3 tools/make_tokenizer_fixtures.py
"""

import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "tokenizer")
INC = os.path.join(ROOT, "src", "tokenizer", "unicode_classes.inc")
NFC_INC = os.path.join(ROOT, "src", "tokenizer", "unicode_nfc.inc")

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

# ---------------------------------------------------------------------------------------------
# Unicode classes. The C++ pre-tokenizers must classify code points exactly like the regex engine
# and Rust std inside the `tokenizers` build we compare against (their Unicode versions differ from
# Python's unicodedata), so the table is probed from that build; unicodedata only fills \w, which
# only the rarely used single_word flag of added tokens needs.
F_LETTER, F_NUMBER, F_SPACE, F_NUMERIC, F_WORD = 1, 2, 4, 8, 16


def probe_classes():
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    dg = pre_tokenizers.Digits(individual_digits=True)
    flags = bytearray(0x110000)
    diffs = 0
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        f = 0
        if c == " ":
            f = F_SPACE
        else:
            # Offsets are in chars; ByteLevel has already mapped the piece text to its byte alphabet.
            lens = [o[1] - o[0] for _, o in bl.pre_tokenize_str("a" + c + c + "1")]
            clen = 1
            if lens == [1 + 2 * clen, 1]:
                f = F_LETTER
            elif lens == [1, 2 * clen + 1]:
                f = F_NUMBER
            elif lens == [1, 2 * clen, 1]:
                f = 0
            elif lens == [1, clen, clen, 1]:
                f = F_SPACE
            else:
                raise SystemExit(f"unexpected probe split for U+{cp:04X}: {lens}")
        if len(dg.pre_tokenize_str("a" + c + "b")) == 3:
            f |= F_NUMERIC
        cat = unicodedata.category(c)
        # Rust regex \w = Alphabetic + M + Nd + Pc + Join_Control; L + Nl stands in for Alphabetic.
        if cat[0] in "LM" or cat in ("Nd", "Nl", "Pc") or cp in (0x200C, 0x200D):
            f |= F_WORD
        ud = (F_LETTER if cat[0] == "L" else 0) | (F_NUMBER if cat[0] == "N" else 0)
        if ud != f & (F_LETTER | F_NUMBER):
            diffs += 1
        flags[cp] = f
    return flags, diffs


def write_inc(flags, diffs):
    ranges = []
    cp = 0
    while cp < 0x110000:
        f = flags[cp]
        start = cp
        while cp + 1 < 0x110000 and flags[cp + 1] == f:
            cp += 1
        if f:
            ranges.append((start, cp, f))
        cp += 1
    with open(INC, "w") as out:
        out.write("// Generated by tools/make_tokenizer_fixtures.py from tokenizers %s; do not edit.\n" %
                  tokenizers.__version__)
        out.write("// {first, last, flags}: 1 letter (\\p{L}), 2 number (\\p{N}), 4 regex \\s, "
                  "8 Rust char::is_numeric, 16 \\w (unicodedata).\n")
        out.write("// Code points absent from the table have no flag. %d ranges; %d code points differ from\n"
                  "// Python %s unicodedata %s in L/N (newer Unicode in the Rust/oniguruma build).\n" %
                  (len(ranges), diffs, sys.version.split()[0], unicodedata.unidata_version))
        for i in range(0, len(ranges), 4):
            out.write(" ".join("{0x%X, 0x%X, %d}," % r for r in ranges[i:i + 4]) + "\n")
    print(f"unicode table: {len(ranges)} ranges, {diffs} L/N differences vs unicodedata")


# ---------------------------------------------------------------------------------------------
# Training text: built from word lists with a fixed seed so the vocab is reproducible.
WORDS = """the a an of to and in on for with at by from up down left right top bottom is are was were be
robot arm gripper pick place put move push pull open close drawer door cup cube block bowl plate bottle
red green blue yellow black white orange purple pink small large big tiny table shelf box basket towel
grasp lift lower rotate turn slide stack unstack insert remove fold wipe pour take bring give hand
sponge spoon fork knife pen marker book lid jar can apple banana carrot tomato bread cloth toy ball
then after before into onto under over next behind front near far slowly carefully quickly gently
""".split()
FOREIGN = """café naïve résumé façade Ångström über straße größe élève où garçon mañana niño corazón
señor déjà coöperate Øresund København Łódź żółw Ελλάδα καλημέρα Москва привет робот кубик
東京 日本語 ロボット 赤い キューブ 机 把红色的方块放在盒子里 机器人 抓取 한국어 로봇 상자
مرحبا بالعالم روبوت שלום עולם रोबोट लाल घन สวัสดี หุ่นยนต์""".split()
SYLLABLES = """ka ro bo ti ne sta pla gri mo ve lu dra shi qu ex ion ing er ed ly té çi ño ül ßa кр ан
ть ло 日 本 語 東 京 機 器 人 ロ ボ ト 한 국 مر حب ש ל ום""".split()
EMOJI = ["😀", "👍", "👍🏽", "🤖", "🇺🇸", "❤️", "👨‍👩‍👧", "🧊", "✅", "🚀"]


def training_text(rng):
    lines = []
    for _ in range(12000):
        n = rng.randint(3, 14)
        ws = []
        for _ in range(n):
            r = rng.random()
            if r < 0.55:
                ws.append(rng.choice(WORDS))
            elif r < 0.75:
                ws.append("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
            elif r < 0.9:
                ws.append(rng.choice(FOREIGN))
            elif r < 0.95:
                ws.append(str(rng.randint(0, 99999)))
            else:
                ws.append(rng.choice(EMOJI))
        s = " ".join(ws)
        if rng.random() < 0.3:
            s = s.capitalize()
        s += rng.choice([".", "!", "?", ",", "", "\n", " don't", " I'll", " it's", " we've"])
        lines.append(s)
    code = ["def grasp(obj):\n    return obj.pos\n", "for i in range(10):\n\tprint(i)\n",
            "x = {'a': 1, \"b\": [2, 3]}\n", "if (a && b) || !c { return -1; }\n"]
    lines.extend(code * 50)
    return lines


# ---------------------------------------------------------------------------------------------
# Test corpus.
TASKS = ["pick up the red cube", "put the green block in the bowl", "open the top drawer",
         "close the microwave door", "stack the blue cube on the yellow cube", "wipe the table with the sponge",
         "Grasp the bottle and pour water into the cup", "move the arm 10 cm to the left",
         "insert the peg into hole #3", "fold the towel twice", "push the T-shaped block to the target"]
UNICODE_BITS = ["é", "e\u0301", "a\u0308\u0301", "ñ", "Å", "ß", "ﬁ", "İ", "ǅ", "東京", "日本語のテキスト",
                "한국어", "中文字符", "😀", "👍🏽", "🇺🇸🇫🇷", "👨‍👩‍👧‍👦", "❤️", "🤖", "مرحبا", "שָׁלוֹם",
                "\u200f", "\u200e", "\u200b", "\u2060", "\ufeff", "ก\u0e31", "क्षि", "\u0301", "ℌ", "Ⅻ", "½",
                "²", "٣٤٥", "１２３", "߁", "𝟘𝟙", "𐍈", "\U0001F9CA", "\U00010FFF", "\U0010FFFF", "\uE000",
                "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\u000b", "\u000c", "\u1680", "\u202f"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>",
            "<end_of_utterance>"]
ADDED_EXTRA = ["<row_1_col_1>", "[MASK]", "zzword", "ΩΩ", "<|im"]


def rand_ascii_sentence(rng):
    ws = [rng.choice(WORDS) for _ in range(rng.randint(1, 12))]
    if rng.random() < 0.4:
        ws[0] = ws[0].capitalize()
    if rng.random() < 0.2:
        ws = [w.upper() for w in ws]
    s = " ".join(ws)
    return s + rng.choice(["", ".", "!", "?", "...", ",", ";", ":", " :)", "\n"])


def rand_whitespace(rng):
    return "".join(rng.choice([" ", " ", "  ", "\t", "\n", "\r\n", "   ", "\u00a0", "\u3000"])
                   for _ in range(rng.randint(1, 4)))


def rand_unicode(rng):
    parts = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        parts.append(rng.choice(UNICODE_BITS) if r < 0.5 else rng.choice(FOREIGN) if r < 0.8
                     else rng.choice(EMOJI) if r < 0.9 else rng.choice(WORDS))
    return rng.choice(["", " "]).join(parts) if rng.random() < 0.7 else rand_whitespace(rng).join(parts)


def rand_number(rng):
    r = rng.random()
    if r < 0.3:
        return str(rng.randint(0, 10 ** rng.randint(1, 25)))
    if r < 0.5:
        return f"{rng.uniform(-1000, 1000):.{rng.randint(1, 6)}f}"
    if r < 0.6:
        return f"{rng.randint(1, 999)},{rng.randint(100, 999)},{rng.randint(100, 999)}"
    words = [rng.choice(WORDS) for _ in range(3)]
    return f"{words[0]} {rng.randint(0, 9999)} {words[1]}{rng.randint(0, 99)} {rng.randint(0, 9)}x{words[2]}"


CONTRACTIONS = ["don't", "I'll", "we've", "you're", "it's", "I'm", "he'd", "DON'T", "I'LL", "'s", "'t",
                "rock'n'roll", "'''", "' s", "can't", "o'clock", "'re'", "y'all", "'d've"]


def rand_contraction(rng):
    ws = [rng.choice(WORDS + CONTRACTIONS) for _ in range(rng.randint(1, 6))]
    return " ".join(ws) if rng.random() < 0.7 else "".join(ws)


def rand_special(rng):
    parts = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(SPECIALS + ADDED_EXTRA))
        elif r < 0.5:
            parts.append(rng.choice(["<|im_start", "im_end|>", "<image", "<|", "|>", "<<image>>", "ΩΩΩ",
                                     "zzwordzz", "xzzword", "[MASK", "MASK]"]))
        else:
            parts.append(rng.choice([rand_ascii_sentence(rng), rng.choice(TASKS), rand_whitespace(rng),
                                     rng.choice(UNICODE_BITS)]))
    sep = rng.choice(["", " ", "\n", "  "])
    return sep.join(parts)


def rand_chars(rng):
    # Random code points from everywhere (incl. unassigned and private use) to exercise the class table.
    out = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.3:
            cp = rng.randint(0x20, 0x7E)
        elif r < 0.6:
            cp = rng.randint(0x80, 0x2FFF)
        elif r < 0.85:
            cp = rng.randint(0x3000, 0xFFFD)
        else:
            cp = rng.randint(0x10000, 0x10FFFF)
        if 0xD800 <= cp <= 0xDFFF:
            cp = 0x41
        out.append(chr(cp))
    return "".join(out)


def test_corpus(rng):
    fixed = ["", " ", "  ", "\n", "\t", " \n ", "hello", " hello", "hello ", "  hello  world  ", "a\n\nb",
             "a \n b", "a  b", "a   1", "x\t\ty", "\r\n", "123", "1234567890123", " 42", "3.14159", "1,000,000",
             "don't", "I'll", "DON'T", "Hello, World!", "pick up the red cube\n", "<|im_start|>user\nhello<|im_end|>",
             "<|im_start|><|im_end|>", "<|endoftext|>", "<|im_start", "<image><image>", "a [MASK] b", "a[MASK]b",
             "  [MASK]  ", "zzword", "a zzword b", "azzwordb", "ΩΩ", "ΩΩΩ", "<|im_end", "<fake_token_around_image>"
             "<image><fake_token_around_image>", "café", "cafe\u0301", "東京タワー", "👨‍👩‍👧‍👦", "🇺🇸", "مرحبا بالعالم",
             "a|b||c", "|", "x | y", "1|2"]
    fixed += [t + "\n" for t in TASKS] + TASKS
    cases = list(fixed)
    gens = [(rand_ascii_sentence, 450), (lambda r: r.choice(TASKS) + r.choice(["", "\n", ".", " "]), 150),
            (rand_unicode, 400), (lambda r: rand_whitespace(r) + rand_ascii_sentence(r) + rand_whitespace(r), 200),
            (rand_number, 250), (rand_contraction, 200), (rand_special, 300), (rand_chars, 250)]
    for gen, n in gens:
        for _ in range(n):
            cases.append(gen(rng))
    # A few long inputs (truncation).
    for _ in range(20):
        cases.append(" ".join(rand_ascii_sentence(rng) for _ in range(rng.randint(5, 15))))
    seen, out = set(), []
    for c in cases:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


# ---------------------------------------------------------------------------------------------
def build_base(rng):
    tok = Tokenizer(models.BPE())
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=3000, min_frequency=2, show_progress=False,
                                  special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(rng), trainer=trainer)
    tok.add_special_tokens([AddedToken("<row_1_col_1>", special=True, normalized=False),
                            AddedToken("[MASK]", special=True, lstrip=True, rstrip=True, normalized=False),
                            AddedToken("<|im", special=True, normalized=False)])
    tok.add_tokens([AddedToken("zzword", single_word=True), AddedToken("ΩΩ")])
    return tok


def variants(base):
    j = json.loads(base.to_str())
    out = {"smollm2_style": j}

    b = json.loads(json.dumps(j))
    b["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    b["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}}
    b["model"]["merges"] = [" ".join(m) for m in b["model"]["merges"]]
    out["bos_template"] = b

    c = json.loads(json.dumps(j))
    c["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "|"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"Regex": GPT2_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "Digits", "individual_digits": False},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]}
    c["post_processor"] = None
    c["model"]["ignore_merges"] = True
    out["split_variants"] = c
    return out


def small_models(rng):
    """Two small BPE models for the model options the byte-level fixtures do not reach (the
    SentencePiece-style path needs them): unk/fuse_unk/byte_fallback and subword affixes."""
    text = training_text(rng)[:3000]
    out = {}
    d = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    d.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(" ", "isolated"),
                                               pre_tokenizers.Digits(individual_digits=True)])
    d.train_from_iterator(text, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>"], limit_alphabet=60,
                                                    show_progress=False))
    d.add_special_tokens(["<|endoftext|>"])
    j = json.loads(d.to_str())
    vocab = j["model"]["vocab"]
    nid = max(max(vocab.values()), max(t["id"] for t in j["added_tokens"])) + 1
    # Appending the byte tokens after the added token leaves its stored id (400) stale on purpose:
    # tokenizers reassigns it on load (to the model size, 624), and the C++ loader must do the same.
    for b in range(0xE0):
        vocab[f"<0x{b:02X}>"] = nid
        nid += 1
    out["bpe_unk_fallback"] = j

    e = Tokenizer(models.BPE(unk_token="<unk>", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    e.pre_tokenizer = pre_tokenizers.Split(" ", "removed")
    e.train_from_iterator(text, trainers.BpeTrainer(vocab_size=500, special_tokens=["<unk>"], limit_alphabet=80,
                                                    continuing_subword_prefix="##", end_of_word_suffix="</w>",
                                                    show_progress=False))
    out["bpe_affixes"] = json.loads(e.to_str())
    return out


def write_nfc_inc():
    """Tables for NFC: full canonical decompositions, canonical combining classes, and the primary
    composites (pairs that NFC recomposes). Hangul syllables are algorithmic in the C++ code."""
    decomp, ccc, comp = [], [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or 0xAC00 <= cp <= 0xD7A3:
            continue
        c = chr(cp)
        cc = unicodedata.combining(c)
        if cc:
            ccc.append((cp, cc))
        d = unicodedata.normalize("NFD", c)
        if d != c:
            decomp.append((cp, [ord(x) for x in d]))
        raw = unicodedata.decomposition(c)
        if raw and not raw.startswith("<"):
            parts = [int(x, 16) for x in raw.split()]
            if len(parts) == 2 and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == c:
                comp.append((parts[0], parts[1], cp))
    comp.sort()
    width = max(len(d) for _, d in decomp)
    with open(NFC_INC, "w") as out:
        out.write("// Generated by tools/make_tokenizer_fixtures.py from Python %s unicodedata %s; do not edit.\n"
                  % (sys.version.split()[0], unicodedata.unidata_version))
        out.write("// %d decompositions (at most %d code points), %d combining classes, %d compositions.\n"
                  % (len(decomp), width, len(ccc), len(comp)))
        out.write("#ifdef VLART_NFC_DECOMP\n")
        for i in range(0, len(decomp), 3):
            out.write(" ".join("{0x%X, {%s}}," % (cp, ", ".join("0x%X" % x for x in d)) for cp, d in decomp[i:i + 3]) + "\n")
        out.write("#endif\n#ifdef VLART_NFC_CCC\n")
        for i in range(0, len(ccc), 6):
            out.write(" ".join("{0x%X, %d}," % r for r in ccc[i:i + 6]) + "\n")
        out.write("#endif\n#ifdef VLART_NFC_COMP\n")
        for i in range(0, len(comp), 4):
            out.write(" ".join("{0x%X, 0x%X, 0x%X}," % r for r in comp[i:i + 4]) + "\n")
        out.write("#endif\n")
    print(f"nfc table: {len(decomp)} decompositions, {len(ccc)} classes, {len(comp)} compositions")


def sentencepiece_models(rng, base):
    """SentencePiece-converted BPE models (Gemma / PaliGemma, Llama-2, Metaspace) and a Qwen2-style
    byte-level one. The SP models train with a Metaspace pre-tokenizer (merges never cross a word
    start), then get the pipeline each family ships; the 256 <0xXX> byte tokens follow the specials."""
    text = training_text(rng)[:4000]
    out = {}
    sp = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    sp.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    sp.train_from_iterator(text, trainers.BpeTrainer(vocab_size=700, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"],
                                                     limit_alphabet=120, show_progress=False))
    j = json.loads(sp.to_str())
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    old = j["model"]["vocab"]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in sorted(old.items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    j["model"]["vocab"] = vocab
    j["added_tokens"] = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for t in specials]
    j["added_tokens"].append({"id": len(vocab), "content": "<start_of_turn>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True})
    j["added_tokens"].append({"id": len(vocab) + 1, "content": "robot arm", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": True, "special": False})
    bos = {"type": "TemplateProcessing",
           "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
           "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"Sequence": {"id": "B", "type_id": 1}}],
           "special_tokens": {"<bos>": {"id": "<bos>", "ids": [vocab["<bos>"]], "tokens": ["<bos>"]}}}
    replace_sp = {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
    sp_decoder = [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
                  {"type": "Fuse"}]

    g = json.loads(json.dumps(j))
    g["normalizer"] = replace_sp
    g["pre_tokenizer"] = None
    g["post_processor"] = bos
    g["decoder"] = {"type": "Sequence", "decoders": sp_decoder}
    out["gemma_style"] = g

    ll = json.loads(json.dumps(g))
    ll["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"}, replace_sp]}
    ll["decoder"] = {"type": "Sequence", "decoders": sp_decoder + [{"type": "Strip", "content": " ", "start": 1,
                                                                     "stop": 0}]}
    out["llama2_style"] = ll

    m = json.loads(json.dumps(g))
    m["normalizer"] = None
    m["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    m["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    out["metaspace_style"] = m

    ms = json.loads(json.dumps(m))
    ms["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    ms["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}
    out["metaspace_split"] = ms

    q = json.loads(base.to_str())
    q["normalizer"] = {"type": "NFC"}
    q["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    q["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    q["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    out["qwen2_style"] = q
    return out


SP_EXTRA_FIXTURES = ("gemma_style", "llama2_style", "metaspace_style", "metaspace_split", "qwen2_style")
SP_EXTRA_TEXTS = ["the robot arm moves", "robot arm", "robot  arm", "robotarm", " robot arm ", "a robot armchair",
                  "<start_of_turn>robot arm<start_of_turn> pick up", "<start_of_turn>user\nhello", "hello<eos>",
                  "<bos> spaced <eos>  ", "\u2581already", " \u2581 x", "\u2581\u2581", "cafe\u0301 robot arm"]
FULL_CORPUS_FIXTURES = ("smollm2_style", "bos_template", "split_variants", "gemma_style", "qwen2_style")


def main():
    only = None
    if len(sys.argv) > 2 and sys.argv[1] == "--only":
        only = set(sys.argv[2].split(","))
    rng = random.Random(20240611)
    os.makedirs(DATA, exist_ok=True)
    if only is None:
        flags, diffs = probe_classes()
        write_inc(flags, diffs)
        write_nfc_inc()

    base = build_base(rng)
    corpus = test_corpus(random.Random(7))
    expected = {"tokenizers_version": tokenizers.__version__, "texts": corpus, "fixtures": {}}
    fixtures = variants(base)
    fixtures.update(small_models(rng))
    fixtures.update(sentencepiece_models(random.Random(99), base))
    if only is not None:
        unknown = only - set(fixtures)
        if unknown:
            raise SystemExit(f"--only: unknown fixtures {sorted(unknown)}")
        with open(os.path.join(DATA, "expected.json"), encoding="utf-8") as f:
            expected = json.load(f)
        if expected["texts"] != corpus:
            raise SystemExit("--only: the committed corpus differs from this script's; regenerate everything")
        expected["tokenizers_version"] = tokenizers.__version__
        fixtures = {k: v for k, v in fixtures.items() if k in only}
    for name, j in fixtures.items():
        # The small models see every third string only, to keep the committed data small.
        indices = list(range(len(corpus))) if name in FULL_CORPUS_FIXTURES \
            else list(range(0, len(corpus), 3))
        text = json.dumps(j, ensure_ascii=False, separators=(",", ":"))
        path = os.path.join(DATA, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        tok = Tokenizer.from_file(path)  # expectations come from the file exactly as committed
        ids, ids_sp, dec, dec_skip = [], [], [], []
        for s in (corpus[i] for i in indices):
            a = tok.encode(s, add_special_tokens=False).ids
            b = tok.encode(s, add_special_tokens=True).ids
            ids.append(a)
            ids_sp.append(b if b != a else None)  # null: same as without special tokens
            d = tok.decode(b, skip_special_tokens=False)
            dec.append(d if d != s else None)  # null: round trip is exact
            ds = tok.decode(b, skip_special_tokens=True)
            dec_skip.append(ds if ds != s else None)
        padded = []
        ptok = Tokenizer.from_file(path)
        pad_id = ptok.token_to_id("<|im_end|>") or 0
        ptok.enable_truncation(48)
        ptok.enable_padding(length=48, pad_id=pad_id, pad_token=ptok.id_to_token(pad_id), direction="right")
        for i in indices:
            s = corpus[i]
            if i % 10 == 0 or len(s) > 200:
                e = ptok.encode(s, add_special_tokens=True)
                padded.append({"index": i, "ids": e.ids, "mask": e.attention_mask})
        expected["fixtures"][name] = {
            "vocab_size": tok.get_vocab_size(with_added_tokens=True), "pad_id": pad_id, "max_length": 48,
            "indices": indices if len(indices) != len(corpus) else None,
            "ids": ids, "ids_special": ids_sp, "decoded": dec, "decoded_skip_special": dec_skip,
            "padded": padded}
        if name in SP_EXTRA_FIXTURES:
            # Strings the shared corpus lacks: the normalized added token "robot arm" (its content is
            # normalized too) and segments after a special token (Metaspace "first", Prepend).
            expected["fixtures"][name]["extra"] = [
                {"text": s, "ids": tok.encode(s, add_special_tokens=False).ids,
                 "ids_special": tok.encode(s, add_special_tokens=True).ids,
                 "decoded": tok.decode(tok.encode(s, add_special_tokens=True).ids, skip_special_tokens=False)}
                for s in SP_EXTRA_TEXTS]
        print(f"{name}: {len(indices)} strings, {sum(map(len, ids))} tokens, {os.path.getsize(path)} bytes")
    with open(os.path.join(DATA, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
    print("expected.json:", os.path.getsize(os.path.join(DATA, "expected.json")), "bytes; tokenizers",
          tokenizers.__version__)


if __name__ == "__main__":
    main()
