"""``blairclip synth``: write a synthetic Amazon-Appliances-like raw dataset (2023 schema + images)."""

HELP = "write synthetic Appliances-like raw reviews + meta (.jsonl.gz, 2023 schema) and one PNG per item"


def add_arguments(parser):
    parser.add_argument("--users", type=int, default=30000, help="number of users (default 30000; 1800000 ~ real Appliances)")
    parser.add_argument("--items", type=int, default=2000, help="number of items (default 2000; 94000 ~ real Appliances)")
    parser.add_argument("--out", required=True, help="output folder for <category>.jsonl.gz, meta_<category>.jsonl.gz, images/")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    parser.add_argument("--category", default="Appliances", help="file name stem (default Appliances)")
    parser.add_argument("--no-images", action="store_true", help="skip drawing the PNG images (fast large-scale path)")
    parser.add_argument("--image-size", type=int, default=64, help="image side in pixels (default 64)")
    parser.add_argument("--activity-exponent", type=float, default=3.5,
                        help="Zipf exponent of reviews per user (default 3.5: ~89%% of users write one review)")
    parser.add_argument("--compresslevel", type=int, default=6, help="gzip level 1-9 (default 6; 1 is faster)")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def main(args):
    from recbole_blairclip.data.synth import synthesize

    s = synthesize(args.out, users=args.users, items=args.items, seed=args.seed, category=args.category,
                   images=not args.no_images, image_size=args.image_size,
                   activity_exponent=args.activity_exponent, compresslevel=args.compresslevel,
                   force=args.force, progress=True)
    print(f"wrote {s['reviews']} reviews by {s['users']} users on {s['items']} items "
          f"({s['meta_records']} meta records, {s['images']} images) to {args.out}")
    for key, path in s["paths"].items():
        if path:
            print(f"  {key}: {path}")
    return 0
