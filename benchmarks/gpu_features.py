"""Feature-extraction throughput with RoBERTa-base-sized and CLIP ViT-B/32-sized RANDOM models.

Random weights have the real architectures' shapes (RoBERTa-base: 12 layers, 768 wide, 514 positions;
CLIP ViT-B/32: 12-layer 768-wide vision tower, 32-pixel patches on 224-pixel images, 512-d projection),
so throughput and memory match the real checkpoints without downloading them. The models are saved to
a temp folder and loaded by path through ``TextEncoder`` / ``ClipImageEncoder``, the code ``blairclip
features`` runs.

Measures: texts/s and tokens/s (max_length 512 and 128), images/s through the CLIP processor + model
(PIL images already decoded), images/s of the model alone (pixel tensors ready), an end-to-end
``extract_features`` run on a synthetic dataset (JPEG files on disk), and peak CUDA memory per stage.

    python benchmarks/gpu_features.py --device cuda            # what gpu_features.sh runs
    python benchmarks/gpu_features.py --device cpu --quick     # smoke test on a CPU machine
"""
import argparse
import json
import random
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
try:  # the package __init__ checks RecBole's pins; this benchmark only needs the features layer
    import recbole_blairclip  # noqa: F401
except ImportError:
    _pkg = types.ModuleType("recbole_blairclip")
    _pkg.__path__ = [str(ROOT / "recbole_blairclip")]
    sys.modules["recbole_blairclip"] = _pkg

WORDS = ("refrigerator water filter replacement compatible with whirlpool kenmore maytag models ice maker "
         "assembly dryer vent hose washer drain pump door seal gasket heating element oven knob stainless "
         "steel easy install fits most brands genuine oem part high quality durable 12 inch 3 pack").split()
HEADER = "item_id:token\titem_text:token_seq\ttitle:token_seq\tcategories:token_seq\tstore:token\timage_url:token"


def product_texts(n, seed=0, min_words=20, max_words=400):
    """Product-like texts with lengths spread between min_words and max_words words."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)]


def build_roberta(folder, size="base", texts=None):
    """Save a random RoBERTa (``base`` = roberta-base shapes, ``tiny`` = 2x32) + a locally trained BPE."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts or product_texts(200), vocab_size=2000, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok = RobertaTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                               pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")
    torch.manual_seed(0)
    if size == "base":  # RobertaConfig() defaults are roberta-base's
        cfg = RobertaConfig(vocab_size=50265, max_position_embeddings=514, pad_token_id=1, bos_token_id=0,
                            eos_token_id=2, type_vocab_size=1)
    else:
        cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=514, pad_token_id=1, bos_token_id=0,
                            eos_token_id=2)
    RobertaModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def build_clip(folder, size="base"):
    """Save a random CLIP (``base`` = ViT-B/32 shapes at 224 px, ``tiny`` = 1 layer, 32 px) + processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    if size == "base":  # CLIPConfig() defaults are ViT-B/32's
        cfg = CLIPConfig()
        proc = CLIPImageProcessor()  # 224 shortest edge, 224 centre crop, CLIP mean/std
    else:
        cfg = CLIPConfig(
            text_config=dict(vocab_size=99, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                             num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                             pad_token_id=1),
            vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                               image_size=32, patch_size=8),
            projection_dim=12)
        proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPModel(cfg).save_pretrained(folder)
    proc.save_pretrained(folder)
    return str(folder)


def random_images(n, seed=0, size=(500, 500)):
    """Smooth random RGB images (product-photo sized) as PIL images."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return [Image.fromarray(s).resize(size, Image.Resampling.BILINEAR) for s in small]


class Stage:
    """Times a block and records peak CUDA memory (reset at entry)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mib = torch.cuda.max_memory_allocated() / 2 ** 20
        else:
            self.peak_mib = None
        self.seconds = time.perf_counter() - self.t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=("base", "tiny"), default="base", help="model shapes (tiny: smoke test)")
    parser.add_argument("--texts", type=int, default=8192)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-batch-size", type=int, default=256)
    parser.add_argument("--e2e-items", type=int, default=2048, help="items of the end-to-end extract run")
    parser.add_argument("--no-fp16", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny models, few items (CPU smoke test)")
    parser.add_argument("--out", default=None, help="write the results as json here")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.texts, args.images, args.e2e_items = "tiny", 64, 32, 32

    import torch
    from PIL import Image

    from recbole_blairclip.features.extract import extract_features
    from recbole_blairclip.features.image import ClipImageEncoder
    from recbole_blairclip.features.text import TextEncoder

    device = torch.device(args.device)
    fp16 = not args.no_fp16
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "torch": torch.__version__, "size": args.size, "fp16": fp16 and device.type == "cuda",
               "batch_size": args.batch_size, "image_batch_size": args.image_batch_size}
    print(json.dumps(results))
    texts = product_texts(args.texts)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        rob = build_roberta(tmp / f"roberta-{args.size}", args.size, texts[:500])
        clip = build_clip(tmp / f"clip-vit-b32-{args.size}", args.size)
        results["build_s"] = round(time.perf_counter() - t0, 1)

        for max_length in (512, 128):
            enc = TextEncoder(rob, max_length=max_length, batch_size=args.batch_size, device=args.device, fp16=fp16)
            enc.encode(texts[: args.batch_size])  # warm-up
            ids = enc.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
            n_tokens = sum(len(x) for x in ids)
            with Stage(device) as st:
                out = enc.encode(texts)
            assert out.shape == (len(texts), enc.dim) and np.isfinite(out).all()
            results[f"text_L{max_length}"] = {"texts": len(texts), "seconds": round(st.seconds, 3),
                                              "texts_per_s": round(len(texts) / st.seconds, 1),
                                              "tokens_per_s": round(n_tokens / st.seconds),
                                              "mean_tokens": round(n_tokens / len(texts), 1),
                                              "peak_cuda_mib": st.peak_mib and round(st.peak_mib)}
            print(f"text  max_length {max_length}: {results[f'text_L{max_length}']}", flush=True)
            del enc
            if device.type == "cuda":
                torch.cuda.empty_cache()

        images = random_images(args.images)
        enc = ClipImageEncoder(clip, batch_size=args.image_batch_size, device=args.device, fp16=fp16)
        enc.encode(images[: args.image_batch_size])
        with Stage(device) as st:
            out = enc.encode(images)
        assert out.shape == (len(images), enc.dim) and np.isfinite(out).all()
        results["image_processor_and_model"] = {"images": len(images), "seconds": round(st.seconds, 3),
                                                "images_per_s": round(len(images) / st.seconds, 1),
                                                "peak_cuda_mib": st.peak_mib and round(st.peak_mib)}
        print(f"image processor+model: {results['image_processor_and_model']}", flush=True)
        pixels = enc.processor(images=images[: args.image_batch_size], return_tensors="pt")["pixel_values"]
        pixels = pixels.to(device, enc.dtype)
        reps = max(1, args.images // args.image_batch_size)
        with torch.inference_mode():
            enc.model.get_image_features(pixel_values=pixels)
            with Stage(device) as st:
                for _ in range(reps):
                    enc.model.get_image_features(pixel_values=pixels)
        results["image_model_only"] = {"images": reps * len(pixels), "seconds": round(st.seconds, 3),
                                       "images_per_s": round(reps * len(pixels) / st.seconds, 1),
                                       "peak_cuda_mib": st.peak_mib and round(st.peak_mib)}
        print(f"image model only: {results['image_model_only']}", flush=True)
        del enc
        if device.type == "cuda":
            torch.cuda.empty_cache()

        # end to end: blairclip features on a synthetic dataset with JPEG files on disk
        ds = tmp / "e2e"
        (ds / "images").mkdir(parents=True)
        n = args.e2e_items
        rows = [f"E{k:06d}\t{texts[k % len(texts)]}\tt\tc\ts\t" for k in range(n)]
        (ds / "e2e.item").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
        for k in range(n):
            images[k % len(images)].save(ds / "images" / f"E{k:06d}.jpg", quality=90)
        with Stage(device) as st:
            feats = extract_features(ds, rob, clip, batch_size=args.batch_size, image_batch_size=args.image_batch_size,
                                     device=args.device, fp16=fp16, chunk_size=1024, load_workers=8, progress=False)
        assert feats.image_mask.all()
        results["extract_end_to_end"] = {"items": n, "text_max_length": feats.meta["text"]["max_length"],
                                         "seconds": round(st.seconds, 3), "items_per_s": round(n / st.seconds, 1),
                                         "peak_cuda_mib": st.peak_mib and round(st.peak_mib)}
        print(f"extract end to end: {results['extract_end_to_end']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
