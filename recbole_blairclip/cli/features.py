"""``blairclip features``: precompute text and image features aligned to a dataset's items."""
from recbole_blairclip.features.pretrained import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER

HELP = "precompute text (BLaIR) and image (CLIP or pixels) features for dataset_atomic/<name>"


def add_arguments(parser):
    parser.add_argument("--dataset", required=True, help="dataset folder, e.g. dataset_atomic/appliances")
    g = parser.add_argument_group("text")
    g.add_argument("--text-encoder", default=DEFAULT_TEXT_ENCODER,
                   help=f"hub id, local folder, 'minilm' (packaged all-MiniLM-L6-v2) or 'none' "
                        f"(default {DEFAULT_TEXT_ENCODER})")
    g.add_argument("--text-revision", default=None, help="hub branch/tag/commit of the text encoder")
    g.add_argument("--pooling", choices=("cls", "avg"), default=None,
                   help="cls (default; BLaIR) or avg; a sentence-transformers folder's own setting otherwise")
    g.add_argument("--max-length", type=int, default=None, help="token limit per text (default 512, or the "
                                                                "sentence-transformers folder's own)")
    g.add_argument("--text-field", default="item_text", help="the .item column to encode (default item_text)")
    g.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    g = parser.add_argument_group("images")
    g.add_argument("--image-encoder", default=DEFAULT_IMAGE_ENCODER,
                   help=f"CLIP hub id or folder, 'pixels' (weight-free thumbnails) or 'none' "
                        f"(default {DEFAULT_IMAGE_ENCODER})")
    g.add_argument("--image-revision", default=None, help="hub branch/tag/commit of the image encoder")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--images", default=None,
                     help="folder of images named <item_id>.<jpg|png|webp|...> (default: <dataset>/images)")
    src.add_argument("--download", action="store_true", help="download each item's image_url into a cache")
    g.add_argument("--cache-dir", default=None, help="download cache (default <dataset>/<name>.image_cache)")
    g.add_argument("--workers", type=int, default=8, help="download threads (default 8)")
    g.add_argument("--timeout", type=float, default=10.0, help="seconds per download request (default 10)")
    g.add_argument("--retries", type=int, default=2, help="retries per download on network errors (default 2)")
    g.add_argument("--max-image-mb", type=float, default=20.0, help="download size cap in MiB (default 20)")
    g.add_argument("--deadline", type=float, default=60.0,
                   help="seconds one image download may take in all (default 60; --timeout bounds each read)")
    g.add_argument("--max-image-pixels", type=int, default=40_000_000,
                   help="refuse images with more pixels, before decoding (default 40000000)")
    g.add_argument("--pixels-size", type=int, default=16, help="pixels encoder thumbnail side (default 16)")
    g.add_argument("--pixels-pca", type=int, default=None, help="PCA-reduce pixels thumbnails to N dims")
    g.add_argument("--image-batch-size", type=int, default=64, help="images per forward pass (default 64)")
    g = parser.add_argument_group("run")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    g.add_argument("--no-fp16", action="store_true", help="run in fp32 on CUDA too")
    g.add_argument("--chunk-size", type=int, default=1024, help="items per resumable chunk (default 1024)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--address", default=None,
                   help="run the encoders on a Ray cluster: auto, ray://<head>:10001, <head>:6379, or 'local' "
                        "(a Ray started here); encoder actors get a GPU each when the cluster has GPUs")
    g.add_argument("--ray-actors", type=int, default=None,
                   help="encoder actors on the cluster (default: one per GPU, else one per CPU minus one)")


def main(args):
    from recbole_blairclip.features.extract import extract_features

    none = lambda v: None if v is None or str(v).lower() == "none" else v  # noqa: E731
    feats = extract_features(
        args.dataset, none(args.text_encoder), none(args.image_encoder), images=args.images,
        download=args.download, cache_dir=args.cache_dir, text_field=args.text_field, pooling=args.pooling,
        max_length=args.max_length, text_revision=args.text_revision, image_revision=args.image_revision,
        pixels_size=args.pixels_size, pixels_pca=args.pixels_pca, batch_size=args.batch_size,
        image_batch_size=args.image_batch_size, device=args.device, fp16=not args.no_fp16,
        chunk_size=args.chunk_size, download_workers=args.workers, download_timeout=args.timeout,
        download_retries=args.retries, max_image_bytes=int(args.max_image_mb * 1024 * 1024),
        threads=args.threads, progress=not args.no_progress, download_deadline=args.deadline,
        max_image_pixels=args.max_image_pixels, address=args.address, ray_actors=args.ray_actors)
    meta = feats.meta
    print(f"{meta['dataset']}: {meta['num_items']} items, {meta['seconds']:.1f} s")
    if meta["text"]:
        t = meta["text"]
        print(f"  text : {t['file']}  [{meta['num_items']}, {t['dim']}]  {t['encoder']} ({t['pooling']}, "
              f"max_length {t['max_length']}, {t['normalization']})")
    if meta["image"]:
        m = meta["image"]
        print(f"  image: {m['file']}  [{meta['num_items']}, {m['dim']}]  {m['encoder']}; "
              f"{m['num_with_image']} with an image, {m['num_missing']} missing")
        for why, count in sorted(m["missing_reasons"].items()):
            print(f"         missing: {count} x {why}")
    print(f"  meta : {meta['dataset']}.features.json")
    return 0
