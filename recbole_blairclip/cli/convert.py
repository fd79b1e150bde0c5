"""``blairclip convert``: Amazon Reviews raw files, or a RecBole atomic dataset (``--inter``), -> RecBole atomic
dataset with a leave-one-out split."""
import json

HELP = ("convert Amazon reviews (+ meta) .jsonl(.gz), or a RecBole atomic dataset (--inter), into a RecBole "
        "atomic dataset with a leave-one-out split")


def add_arguments(parser):
    parser.add_argument("--reviews", default=None, help="reviews file, .jsonl or .jsonl.gz (2023 or 2018 schema)")
    parser.add_argument("--meta", default=None, help="meta file, .jsonl or .jsonl.gz (optional: items get empty text)")
    parser.add_argument("--name", required=True, help="dataset name (folder and file prefix), e.g. Appliances")
    parser.add_argument("--out", default="dataset_atomic", help="parent folder of the dataset (default: dataset_atomic)")
    parser.add_argument("--min-user-inter", type=int, default=2, help="drop users with fewer interactions (default 2)")
    parser.add_argument("--item-core", type=int, default=0, help="k-core on items: drop items with fewer interactions (default 0: off)")
    parser.add_argument("--two-way", action="store_true", help="no validation part: last -> test, rest -> train")
    parser.add_argument("--max-item-list-length", type=int, default=50, help="history length in item_id_list (default 50)")
    parser.add_argument("--text-fields", default=None,
                        help="comma-separated meta fields joined into item_text (default title,description,features; "
                             "with --item: every token/token_seq column)")
    parser.add_argument("--drop-items-without-meta", action="store_true", help="drop interactions with items that have no meta record")
    parser.add_argument("--include-meta-items", action="store_true", help="also list meta items without kept interactions in <name>.item")
    parser.add_argument("--images", default=None,
                        help="folder of <item_id>.png/.jpg pictures (e.g. from `blairclip synth`): copy those of the kept items into <out>/<name>/images/")
    parser.add_argument("--max-text-chars", type=int, default=20000,
                        help="cut item text, title and categories to this many characters (default 20000; "
                             "RecBole cannot read fields over 131072); counted as items.text_truncated")
    parser.add_argument("--force", action="store_true", help="overwrite an existing dataset folder")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    from recbole_blairclip.cli.convert_recbole import add_recbole_arguments

    add_recbole_arguments(parser)


def main(args):
    from recbole_blairclip.cli.convert_recbole import main_recbole
    from recbole_blairclip.data.convert import DEFAULT_TEXT_FIELDS, convert

    if args.inter is not None or args.reviews is None:
        return main_recbole(args)
    args.text_fields = args.text_fields or ",".join(DEFAULT_TEXT_FIELDS)

    stats = convert(args.reviews, args.meta, name=args.name, out=args.out, min_user_inter=args.min_user_inter,
                    item_core=args.item_core, two_way=args.two_way,
                    max_item_list_length=args.max_item_list_length,
                    text_fields=[f.strip() for f in args.text_fields.split(",") if f.strip()],
                    keep_items_without_meta=not args.drop_items_without_meta,
                    include_meta_items=args.include_meta_items, images_dir=args.images, force=args.force,
                    progress=not args.no_progress, max_text_chars=args.max_text_chars)
    r, k, p = stats["reviews"], stats["kept"], stats["parts"]
    print(f"wrote {stats['path']} in {stats['seconds']:.1f} s")
    print(f"reviews: {r['lines']} lines, {r['read']} read ({r['schema']}), {r['bad_lines_total']} bad lines"
          + (f" {json.dumps({x: v['count'] for x, v in r['bad_lines'].items()})}" if r["bad_lines"] else ""))
    print(f"dropped: {json.dumps(stats['dropped'])}")
    print(f"kept: {k['users']} users, {k['items']} items, {k['interactions']} interactions; "
          f"train {p['train']['interactions']}, valid {p['valid']['interactions']}, test {p['test']['interactions']}; "
          f"cold-start test targets {stats['cold_start']['test_targets']}")
    it = stats["items"]
    print(f"items: {it['rows']} rows, {it['without_meta']} without meta, {it['without_image_url']} without image url"
          + (f", {it['images_copied']} images copied" if "images_copied" in it else "")
          + (f", {it['text_truncated']} cut to --max-text-chars" if it.get("text_truncated") else ""))
    return 0
