"""``blairclip check-split``: independent brute-force verification of a converted leave-one-out split."""

HELP = "verify that a dataset folder holds a correct, leakage-free leave-one-out split of <name>.inter"


def add_arguments(parser):
    parser.add_argument("folder", help="dataset folder, e.g. dataset_atomic/Appliances")
    parser.add_argument("--name", default=None, help="dataset name (default: the folder's name)")
    parser.add_argument("--max-item-list-length", type=int, default=None,
                        help="history length (default: from <name>.stats.json, else 50)")
    parser.add_argument("--max-violations", type=int, default=20, help="violations to print (default 20)")


def main(args):
    import os

    from recbole_blairclip.data.check import check_split
    from recbole_blairclip.errors import DatasetError

    if not os.path.isdir(args.folder):
        raise DatasetError(f"{args.folder}: no such dataset folder")
    result = check_split(args.folder, name=args.name, max_item_list_length=args.max_item_list_length,
                         max_violations=args.max_violations)
    print(result.summary())
    return 0 if result.ok else 1
