"""CPU throughput of feature extraction: texts/s and images/s for the tiny, packaged and base-sized encoders.

Texts are real Amazon Appliances item texts (title + description + features of the first 100 meta lines in
``../shared/data``, repeated) when that folder is there, else synthetic product texts. Images are 500x500
JPEG files on disk. Every encoder is loaded by path through the code ``blairclip features`` runs.

    python benchmarks/features_speed.py                 # everything (a few minutes on 2 cores)
    python benchmarks/features_speed.py --e2e-items 3000 --skip-base
"""
import argparse
import gzip
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_features import HEADER, build_clip, build_roberta, product_texts, random_images  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
META = ROOT.parent / "shared" / "data" / "amazon2018-appliances" / "meta_Appliances_first100.json.gz"


def item_texts(n):
    """n item texts: real ones (repeated) when the shared sample is there, else synthetic."""
    if not META.is_file():
        return product_texts(n, max_words=200), "synthetic"
    base = []
    with gzip.open(META, "rt", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            parts = [d.get("title", "")] + d.get("description", []) + d.get("feature", [])
            text = html.unescape(re.sub(r"<[^>]+>", " ", " ".join(parts)))
            base.append(" ".join(text.split()))
    return [base[i % len(base)] for i in range(n)], "real Appliances meta (100 distinct)"


def timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process): CPU time is the fair number on a shared machine."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - t, time.process_time() - c


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--base-texts", type=int, default=16, help="texts for the RoBERTa-base-sized model")
    parser.add_argument("--base-images", type=int, default=32, help="images for the CLIP-B/32-sized model")
    parser.add_argument("--e2e-items", type=int, default=1000, help="items of the synthetic end-to-end run")
    parser.add_argument("--e2e-max-length", type=int, default=None, help="default: the model's own (256)")
    parser.add_argument("--synthetic-e2e", action="store_true", help="end-to-end on synthetic items, not the sample")
    parser.add_argument("--skip-base", action="store_true", help="skip the base-sized random models")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)

    import torch

    from recbole_blairclip.features.extract import extract_features
    from recbole_blairclip.features.image import ClipImageEncoder, PixelsImageEncoder
    from recbole_blairclip.features.sources import open_image
    from recbole_blairclip.features.text import TextEncoder

    if args.threads:
        torch.set_num_threads(args.threads)
    texts, origin = item_texts(args.texts)
    rows = []
    print(f"torch threads {torch.get_num_threads()}; texts: {origin}; load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        specs = [("tiny random RoBERTa (2x32)", build_roberta(tmp / "rt", "tiny", texts), (512,)),
                 ("all-MiniLM-L6-v2 (minilm alias)", "minilm", (256, 128, 64))]
        if not args.skip_base:
            specs.append(("RoBERTa-base-sized random", build_roberta(tmp / "rb", "base", texts), (512, 128)))
        for label, name, lengths in specs:
            for max_length in lengths:
                enc = TextEncoder(name, max_length=max_length, batch_size=32, device="cpu")
                n = args.texts if "base" not in label else min(args.texts, args.base_texts)
                enc.encode(texts[:8])
                ids = enc.tokenizer(texts[:n], truncation=True, max_length=max_length)["input_ids"]
                tokens = sum(len(x) for x in ids)
                _, sec, cpu = timed(enc.encode, texts[:n])
                rows.append((f"text: {label}, max_length {max_length}", n, sec, cpu, f"{n / sec:.1f} texts/s",
                             f"{n / cpu:.1f} texts/CPU-s; {tokens / sec:.0f} tokens/s, mean {tokens / n:.0f} tokens"))
                print(rows[-1], flush=True)

        # images: JPEG files on disk, decoded then encoded (decode time included)
        folder = tmp / "imgs"
        folder.mkdir()
        pics = random_images(args.images)
        for k, img in enumerate(pics):
            img.save(folder / f"{k}.jpg", quality=90)
        paths = [folder / f"{k}.jpg" for k in range(args.images)]
        pix = PixelsImageEncoder(size=16)
        _, sec, cpu = timed(lambda: pix.encode([open_image(p, pix.draft_size)[0] for p in paths]))
        rows.append(("image: pixels16, decode + thumbnail", args.images, sec, cpu, f"{args.images / sec:.1f} images/s",
                     f"{args.images / cpu:.1f} images/CPU-s"))
        print(rows[-1], flush=True)
        clip_specs = [("tiny random CLIP (32 px)", build_clip(tmp / "ct", "tiny"), args.images)]
        if not args.skip_base:
            clip_specs.append(("CLIP ViT-B/32-sized random", build_clip(tmp / "cb", "base"), args.base_images))
        for label, name, n in clip_specs:
            enc = ClipImageEncoder(name, batch_size=32, device="cpu")
            enc.encode(pics[:4])
            _, sec, cpu = timed(lambda: enc.encode([open_image(p)[0] for p in paths[:n]]))
            rows.append((f"image: {label}, decode + processor + model", n, sec, cpu, f"{n / sec:.1f} images/s",
                         f"{n / cpu:.1f} images/CPU-s"))
            print(rows[-1], flush=True)

        # end to end: the bundled-sample recipe (minilm + pixels), on a copy of the sample when it is there
        sample = ROOT / "dataset_atomic" / "appliances-sample"
        if sample.is_dir() and not args.synthetic_e2e:
            ds = tmp / "appliances-sample"
            shutil.copytree(sample, ds, ignore=shutil.ignore_patterns("*.npy", "*.features.json", ".features-*"))
            label = "the bundled appliances-sample"
        else:
            ds = tmp / "sample"
            (ds / "images").mkdir(parents=True)
            all_texts, _ = item_texts(args.e2e_items)
            lines = [f"S{k:06d}\t{all_texts[k]}\tt\tc\ts\t" for k in range(args.e2e_items)]
            (ds / "sample.item").write_text(HEADER + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
            for k in range(args.e2e_items):
                pics[k % len(pics)].resize((128, 128)).save(ds / "images" / f"S{k:06d}.png")
            label = "synthetic items, PNG folder"
        feats, sec, cpu = timed(lambda: extract_features(ds, "minilm", "pixels", max_length=args.e2e_max_length,
                                                         progress=False))
        n = len(feats.item_ids)
        rows.append((f"extract_features: minilm (max_length {feats.meta['text']['max_length']}) + pixels16, {label}",
                     n, sec, cpu, f"{n / sec:.1f} items/s", f"{n / cpu:.1f} items/CPU-s"))
        print(rows[-1], flush=True)

    print(f"\nload average at the end {os.getloadavg()}")
    print("\n| what | n | wall s | CPU s | throughput (wall) | notes |\n| --- | ---: | ---: | ---: | ---: | --- |")
    for what, n, sec, cpu, rate, note in rows:
        print(f"| {what} | {n} | {sec:.2f} | {cpu:.2f} | {rate} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
