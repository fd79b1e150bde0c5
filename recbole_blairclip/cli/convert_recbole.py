"""The RecBole-atomic input of ``blairclip convert`` (``--inter PATH.inter [--item PATH.item]``): its flags and
its printout. The split flags (``--min-user-inter``, ``--item-core``, ``--two-way``, ``--max-item-list-length``,
``--text-fields``, ``--force``) are shared with the Amazon path."""
import json


def add_recbole_arguments(parser):
    g = parser.add_argument_group("RecBole atomic input (instead of --reviews/--meta)")
    g.add_argument("--inter", nargs="+", default=None, metavar="PATH.inter",
                   help="RecBole .inter file(s): interactions (user_id, item_id[, rating][, timestamp]) or "
                        "sequences (user_id, item_id_list, item_id; e.g. ds.train.inter ds.valid.inter ds.test.inter)")
    g.add_argument("--item", default=None, metavar="PATH.item", help="RecBole .item file: item text from --text-fields")
    g.add_argument("--user-field", default=None, help="user column (default user_id)")
    g.add_argument("--item-field", default=None, help="item column (default item_id)")
    g.add_argument("--time-field", default=None, help="time column (default timestamp; without one: file order)")
    g.add_argument("--rating-field", default=None, help="rating column (default rating)")
    g.add_argument("--min-rating", type=float, default=None,
                   help="keep interactions with rating >= this (RecBole leaderboard: 3)")


def main_recbole(args):
    from recbole_blairclip.data.recbole_atomic import convert_recbole
    from recbole_blairclip.errors import DatasetError

    if args.inter is None:
        raise DatasetError("give --reviews (Amazon JSON Lines) or --inter (a RecBole atomic .inter file)")
    if args.meta is not None or args.images is not None:
        raise DatasetError("--meta and --images belong to --reviews; with --inter give item text with --item")
    fields = [f.strip() for f in args.text_fields.split(",") if f.strip()] if args.text_fields else None
    stats = convert_recbole(args.inter, args.item, name=args.name, out=args.out, user_field=args.user_field,
                            item_field=args.item_field, time_field=args.time_field, rating_field=args.rating_field,
                            min_rating=args.min_rating, min_user_inter=args.min_user_inter, item_core=args.item_core,
                            two_way=args.two_way, max_item_list_length=args.max_item_list_length,
                            text_fields=fields, force=args.force)
    k, p = stats["kept"], stats["parts"]
    print(f"wrote {stats['path']} in {stats['seconds']:.1f} s")
    for f in stats["inter_files"]:
        bad = {x: v["count"] for x, v in f["bad_lines"].items()}
        print(f"{f['file']}: {f['form']}, {f['lines']} lines, {f['read']} read, {f['bad_lines_total']} bad lines"
              + (f" {json.dumps(bad)}" if bad else ""))
    print(f"dropped: {json.dumps(stats['dropped'])}")
    print(f"kept: {k['users']} users, {k['items']} items, {k['interactions']} interactions; "
          f"train {p['train']['interactions']}, valid {p['valid']['interactions']}, test {p['test']['interactions']}; "
          f"cold-start test targets {stats['cold_start']['test_targets']}")
    it = stats["items"]
    print(f"items: {it['rows']} rows, {it['without_meta']} without an .item row, {it['without_text']} without text")
    return 0
