"""``blairclip models``: list the model names ``run_recbole --model=`` accepts."""
from recbole_blairclip import registry

HELP = "list plugin models and RecBole's built-in models"


def add_arguments(parser):
    parser.add_argument("--plugin-only", action="store_true", help="only the plugin's own models")


def main(args):
    print("plugin models: " + " ".join(registry.plugin_model_names()))
    if not args.plugin_only:
        builtin = [n for n in registry.recbole_model_names() if n not in registry.PLUGIN_MODELS]
        print("RecBole models: " + " ".join(builtin))
    return 0
