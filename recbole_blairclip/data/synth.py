"""Synthetic Amazon-Appliances-like raw data (2023 schema) with signal a model can learn.

``synthesize(out, users, items, seed)`` writes ``<out>/<category>.jsonl.gz`` (reviews),
``<out>/meta_<category>.jsonl.gz`` (meta), ``<out>/images/<item_id>.png`` (one product picture per item
that has an image), ``<out>/items_truth.tsv`` (the hidden attributes of every item) and
``<out>/synth.json`` (parameters and counts). Same arguments -> byte-identical files.

Generative story
----------------
Catalogue. Every item is a *primary* appliance (refrigerator, washer, dryer, dishwasher, range, ...)
or an *accessory* (water filter, washer hose, dryer vent kit, oven knob, ...). Each accessory type
complements one or more primary types (a refrigerator -> its water filter). Every item has:

- a **type** and a **brand** (primary items: the maker; accessories: a parts maker, plus the appliance
  brand it *fits*, "compatible with Whirlpool"), both written in the title/description/features;
- a **colour** (white, black, stainless steel, ...). It is drawn in the item's picture, but written
  in the text for only ``colour_text_frac`` of the items: for the others **colour is visible only in
  the image** (the picture also shows the type as a shape and the brand as a coloured mark);
- a **popularity** weight (log-normal, ``popularity_sigma``): a few items get most reviews.

Users. The number of reviews of a user follows a Zipf law with exponent ``activity_exponent``
(3.5 -> about 89 % of users write one review and the mean is about 1.2, as in Amazon Appliances 2023:
2.1M reviews by 1.8M users). Every user has a preferred colour and a preferred brand.

Sequences. A user's first purchase is a fresh pick: a type (by type popularity), then an item of that
type by popularity, restricted to the user's colour (probability 0.6) or brand (0.2). Each later
purchase is, with probability ``complement_prob`` and when the user owns a primary appliance, an
accessory that complements the latest primary appliance and fits its brand (0.85), bought a few weeks
later; otherwise another fresh pick, months later. So the next item is predictable from the history
(complements, brand), from text (types, brands) and, for colour, from images.

Noise like the real files: ~1.5 % repeated reviews of the same item (later, dedupe keeps the earliest),
15 % of reviews name a variant ``asin`` different from the ``parent_asin``, ``missing_meta_frac`` of the
items have no meta line, ``missing_image_frac`` have no image, and some descriptions carry HTML
(``<br>``, ``&amp;``). Timestamps are milliseconds between 2010 and 2023-09.

Scale: ``users=1_800_000, items=94_000`` gives about 2.1M reviews (Appliances' size); vectorised with
numpy and written with orjson, it takes well under a minute without images (``images=False``).
"""
import gzip
import json
import os
import shutil

import numpy as np

from recbole_blairclip.errors import DatasetError
from recbole_blairclip.io import replacing

try:
    import orjson

    def _dumps(obj):
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover
    def _dumps(obj):
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

# primary type: (title words, category, picture shape)
PRIMARY = {
    "refrigerator": ("French Door Refrigerator", "Refrigerators", "tall"),
    "freezer": ("Upright Freezer", "Freezers", "tall"),
    "wine cooler": ("Wine Cooler", "Wine Cellars", "tall"),
    "washer": ("Front Load Washer", "Washers & Dryers", "round"),
    "dryer": ("Electric Dryer", "Washers & Dryers", "round"),
    "dishwasher": ("Built-In Dishwasher", "Dishwashers", "box"),
    "range": ("Electric Range", "Ranges, Ovens & Cooktops", "range"),
    "microwave": ("Countertop Microwave", "Microwave Ovens", "wide"),
    "range hood": ("Wall Mount Range Hood", "Range Hoods", "hood"),
    "ice maker": ("Countertop Ice Maker", "Ice Makers", "box"),
}
# accessory type: (title words, category, shape, complemented primary types)
ACCESSORY = {
    "water filter": ("Refrigerator Water Filter", "Water Filters", "cylinder", ["refrigerator", "ice maker"]),
    "refrigerator shelf": ("Refrigerator Glass Shelf", "Refrigerator Parts", "flat", ["refrigerator"]),
    "door gasket": ("Freezer Door Gasket", "Refrigerator Parts", "ring", ["freezer", "refrigerator"]),
    "washer hose": ("Washing Machine Inlet Hose", "Washer Parts", "hose", ["washer"]),
    "drain pump": ("Drain Pump Assembly", "Washer Parts", "circle", ["washer", "dishwasher"]),
    "dryer vent kit": ("Dryer Vent Hose Kit", "Dryer Parts", "hose", ["dryer"]),
    "dryer belt": ("Dryer Drum Belt", "Dryer Parts", "ring", ["dryer"]),
    "lint brush": ("Dryer Lint Trap Brush", "Dryer Parts", "line", ["dryer"]),
    "dishwasher rack": ("Dishwasher Upper Rack", "Dishwasher Parts", "grid", ["dishwasher"]),
    "spray arm": ("Dishwasher Spray Arm", "Dishwasher Parts", "line", ["dishwasher"]),
    "burner grate": ("Cast Iron Burner Grate", "Range Parts", "grid", ["range"]),
    "oven knob": ("Oven Control Knob Set", "Range Parts", "circle", ["range"]),
    "turntable plate": ("Microwave Turntable Glass Plate", "Microwave Parts", "circle", ["microwave"]),
    "grease filter": ("Range Hood Grease Filter", "Range Hood Parts", "grid", ["range hood"]),
    "wine rack": ("Wine Cooler Wooden Shelf", "Wine Cellar Parts", "flat", ["wine cooler"]),
    "ice scoop": ("Ice Maker Scoop", "Ice Maker Parts", "circle", ["ice maker", "freezer"]),
}
BRANDS = ["Whirlpool", "GE", "Samsung", "LG", "Frigidaire", "Bosch", "KitchenAid", "Maytag", "Electrolux",
          "Kenmore", "Haier", "Amana", "Midea", "Danby"]
PART_MAKERS = ["EveryDrop", "PartsBuddy", "Supplying Demand", "AMI Parts", "Ultra Durable", "WaterSentinel",
               "HQRP", "Siwdoy", "Romalon", "BlueStars"]
COLOURS = {  # name -> (RGB, share)
    "white": ((245, 245, 240), 0.26), "black": ((25, 25, 28), 0.22), "stainless steel": ((170, 172, 176), 0.30),
    "slate": ((78, 84, 92), 0.08), "red": ((196, 30, 36), 0.07), "blue": ((40, 80, 170), 0.07),
}
BRAND_RGB = [(200, 16, 46), (0, 91, 172), (20, 40, 160), (165, 0, 52), (0, 120, 80), (220, 0, 30),
             (140, 20, 20), (0, 60, 130), (30, 30, 120), (90, 90, 90), (0, 100, 180), (200, 120, 0),
             (0, 150, 200), (180, 0, 120), (60, 140, 60), (120, 60, 160), (30, 120, 120), (160, 100, 40),
             (80, 80, 200), (200, 60, 100), (10, 10, 10), (100, 160, 30), (200, 180, 20), (60, 60, 60)]
REVIEW_TITLES = ["Five Stars", "Works great", "Perfect fit", "As described", "Great value", "Exactly what I needed",
                 "Good product", "Does the job", "Love it", "Not bad", "Fits perfectly", "Disappointed",
                 "Stopped working", "Easy install", "Highly recommend", "Great replacement", "OK", "Four Stars",
                 "Excellent", "Would buy again", "Cheaply made", "Just right", "Fast shipping", "Quality part"]
OPENERS = ["I bought this {t} to replace the old one.", "We needed a new {t} for our kitchen.",
           "Ordered the {t} after ours broke down.", "This {t} arrived quickly and well packed.",
           "I was skeptical about buying a {t} online.", "Our old {t} lasted ten years, so I was due.",
           "Purchased this {t} for a rental property.", "I compared several options before picking this {t}.",
           "My husband installed the {t} on a Saturday.", "Got this {t} on sale and it was worth it.",
           "The {t} matched the description exactly.", "Second time buying this {t}."]
DETAILS = ["Installation took about twenty minutes with basic tools.", "It fit without any modification.",
           "The instructions were clear enough.", "Packaging was solid and nothing was damaged.",
           "It runs quietly and looks good in the kitchen.", "The fit and finish are better than expected.",
           "I had to watch a video to figure out the install.", "Customer service answered my question quickly.",
           "It works just like the original part.", "The price was much lower than the local store.",
           "It took a week to arrive but it was worth the wait.", "Measure before you order to be sure.",
           "The size was right and the quality seems good.", "No leaks so far after a month of use.",
           "It is a little louder than our previous one.", "The build feels sturdy and well made."]
OPINIONS = ["Very happy with this purchase.", "Would definitely recommend it.", "Does exactly what it should.",
            "Good value for the money.", "It stopped working after a few months, which is disappointing.",
            "Not perfect, but it does the job.", "Five stars, no complaints.", "I would buy it again.",
            "Cheaply made, but it works for now.", "Great product at a fair price."]
FEATURES = ["Easy to install, no tools required", "Meets or exceeds original equipment specifications",
            "Energy efficient design lowers operating costs", "Backed by a one year limited warranty",
            "Tested for durability and long life", "Quiet operation for open floor plans",
            "Precise fit for a seamless look", "Made from high quality, food safe materials",
            "Fingerprint resistant finish", "Removes up to 99 percent of contaminants"]


def _zipf_counts(rng, n, a, cap):
    return np.minimum(rng.zipf(a, n), cap).astype(np.int64)


def _random_ids(rng, n, prefix, length):
    alphabet = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", dtype=np.uint8)
    codes = alphabet[rng.integers(0, 36, size=(n, length))]
    raw = codes.tobytes()
    return [prefix + raw[k * length:(k + 1) * length].decode("ascii") for k in range(n)]


def _unique_item_ids(rng, n):
    ids = _random_ids(rng, n, "B0", 8)
    seen = set()
    for k in range(n):
        while ids[k] in seen:
            ids[k] = _random_ids(rng, 1, "B0", 8)[0]
        seen.add(ids[k])
    return ids


class _GroupSampler:
    """Draw items by popularity within integer groups, fully vectorised (one global cumsum)."""

    def __init__(self, keys, weights):
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        self.cum = np.cumsum(weights[self.order])

    def sample(self, qkeys, u):
        lo = np.searchsorted(self.keys, qkeys, "left")
        hi = np.searchsorted(self.keys, qkeys, "right")
        empty = lo == hi
        base = np.where(lo > 0, self.cum[np.maximum(lo - 1, 0)], 0.0)
        top = self.cum[np.maximum(hi - 1, 0)]
        pos = np.searchsorted(self.cum, base + u * (top - base), "right")
        pos = np.clip(pos, lo, np.maximum(hi - 1, lo))
        out = self.order[np.minimum(pos, len(self.order) - 1)]
        out[empty] = -1
        return out


def _catalogue(rng, n_items, colour_text_frac, popularity_sigma, missing_meta_frac, missing_image_frac):
    types = list(PRIMARY) + list(ACCESSORY)
    n_prim = len(PRIMARY)
    # every type gets at least one item when possible; accessories are ~60 % of the catalogue
    type_share = np.array([1.0] * n_prim + [1.5] * len(ACCESSORY))
    item_type = rng.choice(len(types), size=n_items, p=type_share / type_share.sum())
    item_type[:min(n_items, len(types))] = np.arange(min(n_items, len(types)))
    brand_w = 1.0 / np.arange(1, len(BRANDS) + 1) ** 0.8
    brand = rng.choice(len(BRANDS), size=n_items, p=brand_w / brand_w.sum())  # maker or fitted brand
    maker = rng.integers(0, len(PART_MAKERS), size=n_items)
    colour_p = np.array([v[1] for v in COLOURS.values()])
    colour = rng.choice(len(COLOURS), size=n_items, p=colour_p / colour_p.sum())
    colour_in_text = rng.random(n_items) < colour_text_frac
    popularity = rng.lognormal(0.0, popularity_sigma, size=n_items)
    has_meta = rng.random(n_items) >= missing_meta_frac
    has_image = rng.random(n_items) >= missing_image_frac
    return dict(types=types, n_prim=n_prim, type=item_type, brand=brand, maker=maker, colour=colour,
                colour_in_text=colour_in_text, popularity=popularity, has_meta=has_meta, has_image=has_image)


def _sequences(rng, cat, n_users, activity_exponent, complement_prob, max_user_reviews):
    types = cat["types"]
    n_types, n_prim = len(types), cat["n_prim"]
    nb, nc = len(BRANDS), len(COLOURS)
    it_type, it_brand, it_colour, pop = cat["type"], cat["brand"], cat["colour"], cat["popularity"]
    by_type = _GroupSampler(it_type, pop)
    by_type_colour = _GroupSampler(it_type * nc + it_colour, pop)
    by_type_brand = _GroupSampler(it_type * nb + it_brand, pop)
    by_all = _GroupSampler(np.zeros(len(pop), dtype=np.int64), pop)
    # complements: accessory type indices per primary type
    comps = [[types.index(a) for a, spec in ACCESSORY.items() if types[p] in spec[3]] for p in range(n_prim)]
    max_c = max(len(c) for c in comps)
    comp_table = np.array([c + [c[0]] * (max_c - len(c)) for c in comps], dtype=np.int64)
    comp_len = np.array([len(c) for c in comps], dtype=np.int64)
    type_pop = np.bincount(it_type, weights=pop, minlength=n_types)
    type_cum = np.cumsum(type_pop) / type_pop.sum()

    n_per_user = _zipf_counts(rng, n_users, activity_exponent, max_user_reviews)
    colour_p = np.array([v[1] for v in COLOURS.values()])
    u_colour = rng.choice(nc, size=n_users, p=colour_p / colour_p.sum())
    brand_w = 1.0 / np.arange(1, nb + 1) ** 0.8
    u_brand = rng.choice(nb, size=n_users, p=brand_w / brand_w.sum())
    offset = np.concatenate([[0], np.cumsum(n_per_user)[:-1]])
    n_events = int(n_per_user.sum())
    ev_item = np.full(n_events, -1, dtype=np.int64)
    ev_comp = np.zeros(n_events, dtype=bool)
    last_primary = np.full(n_users, -1, dtype=np.int64)

    def fresh(users):
        r = rng.random(len(users))
        t = np.minimum(np.searchsorted(type_cum, rng.random(len(users)), "right"), n_types - 1)
        keys_c = t * nc + u_colour[users]
        keys_b = t * nb + u_brand[users]
        u = rng.random(len(users))
        out = np.where(r < 0.6, by_type_colour.sample(keys_c, u),
                       np.where(r < 0.8, by_type_brand.sample(keys_b, u), by_type.sample(t, u)))
        miss = out < 0
        if miss.any():
            out[miss] = by_type.sample(t[miss], u[miss])
        miss = out < 0
        if miss.any():
            out[miss] = by_all.sample(np.zeros(int(miss.sum()), dtype=np.int64), u[miss])
        return out

    for step in range(int(n_per_user.max()) if n_users else 0):
        users = np.flatnonzero(n_per_user > step)
        ev = offset[users] + step
        items = np.empty(len(users), dtype=np.int64)
        comp = np.zeros(len(users), dtype=bool)
        if step > 0:
            lp = last_primary[users]
            comp = (lp >= 0) & (rng.random(len(users)) < complement_prob)
        if comp.any():
            cu, clp = users[comp], last_primary[users[comp]]
            ptype = it_type[clp]
            acc = comp_table[ptype, rng.integers(0, 1 << 30, size=len(cu)) % comp_len[ptype]]
            fit = np.where(rng.random(len(cu)) < 0.85, it_brand[clp], rng.integers(0, nb, size=len(cu)))
            u = rng.random(len(cu))
            pick = by_type_brand.sample(acc * nb + fit, u)
            miss = pick < 0
            if miss.any():
                pick[miss] = by_type.sample(acc[miss], u[miss])
            miss = pick < 0
            if miss.any():
                pick[miss] = fresh(cu[miss])
            items[comp] = pick
        if (~comp).any():
            items[~comp] = fresh(users[~comp])
        ev_item[ev] = items
        ev_comp[ev] = comp
        prim = it_type[items] < n_prim
        last_primary[users[prim]] = items[prim]

    ev_user = np.repeat(np.arange(n_users), n_per_user)
    # timestamps (ms): complements follow within weeks, fresh picks within months
    day = 86_400_000
    t_begin, t_end = 1_262_304_000_000, 1_693_526_400_000  # 2010-01-01, 2023-09-01
    gap = np.where(ev_comp, rng.exponential(25 * day, n_events), rng.exponential(200 * day, n_events))
    gap[offset] = 0
    cum = np.cumsum(gap)
    cum = cum - np.repeat(cum[offset], n_per_user)
    total = cum[offset + n_per_user - 1]
    span = np.maximum(t_end - t_begin - total, 0)
    start = t_begin + span * np.sqrt(rng.random(n_users))  # more reviews in recent years
    ts = (np.repeat(start, n_per_user) + cum).astype(np.int64)
    return ev_user, ev_item, ts, u_colour


def _review_lines(rng, cat, item_ids, user_ids, ev_user, ev_item, ts, types):
    n = len(ev_user)
    # ~1.5 % repeated reviews of the same item, later
    dup = np.flatnonzero(rng.random(n) < 0.015)
    ev_user = np.concatenate([ev_user, ev_user[dup]])
    ev_item = np.concatenate([ev_item, ev_item[dup]])
    ts = np.concatenate([ts, ts[dup] + rng.integers(60_000, 90 * 86_400_000, size=len(dup))])
    n = len(ev_user)
    perm = rng.permutation(n)
    ev_user, ev_item, ts = ev_user[perm], ev_item[perm], ts[perm]
    rating = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], size=n, p=[0.09, 0.05, 0.07, 0.13, 0.66])
    titles = rng.integers(0, len(REVIEW_TITLES), size=n)
    opener = rng.integers(0, len(OPENERS), size=n)
    d1 = rng.integers(0, len(DETAILS), size=n)
    d2 = rng.integers(0, len(DETAILS), size=n)
    op = rng.integers(0, len(OPINIONS), size=n)
    helpful = np.minimum(rng.geometric(0.6, size=n) - 1, 500)
    verified = rng.random(n) < 0.9
    variant = rng.random(n) < 0.15
    var_suffix = _random_ids(rng, 64, "", 2)
    type_names = [t for t in types]
    openers = [[o.format(t=tn) for o in OPENERS] for tn in type_names]
    it_type = cat["type"]
    for k in range(n):
        i = int(ev_item[k])
        pid = item_ids[i]
        asin = pid[:-2] + var_suffix[k & 63] if variant[k] else pid
        text = " ".join((openers[it_type[i]][opener[k]], DETAILS[d1[k]], DETAILS[d2[k]], OPINIONS[op[k]]))
        yield _dumps({"rating": float(rating[k]), "title": REVIEW_TITLES[titles[k]], "text": text, "images": [],
                      "asin": asin, "parent_asin": pid, "user_id": user_ids[ev_user[k]], "timestamp": int(ts[k]),
                      "helpful_vote": int(helpful[k]), "verified_purchase": bool(verified[k])})


def _meta_record(rng, k, cat, item_id, types):
    t = int(cat["type"][k])
    tname = types[t]
    colour = list(COLOURS)[cat["colour"][k]]
    brand = BRANDS[cat["brand"][k]]
    model = f"{brand[:2].upper()}{int(rng.integers(100, 999))}{chr(65 + int(rng.integers(0, 26)))}"
    colour_txt = cat["colour_in_text"][k]
    if t < cat["n_prim"]:
        words, category, _ = PRIMARY[tname]
        store = brand
        title = f"{brand} {model} {words}" + (f", {colour.title()}" if colour_txt else "")
        desc = [f"The {brand} {words.lower()} brings reliable performance to your home.",
                f"Designed by {brand} for everyday use.<br>Quality &amp; value in one {tname}."]
        cats = ["Appliances", category]
    else:
        words, category, _, fits = ACCESSORY[tname]
        store = PART_MAKERS[cat["maker"][k]]
        title = f"{store} {model} {words} Replacement for {brand} {fits[0].title()}" + \
            (f", {colour.title()}" if colour_txt else "")
        desc = [f"Compatible with {brand} {' and '.join(fits)} models.",
                f"This {tname} is a direct replacement part.<br>Check your model number &amp; fit before ordering."]
        cats = ["Appliances", "Parts & Accessories", category]
    feats = [FEATURES[j] for j in rng.choice(len(FEATURES), size=3, replace=False)]
    feats.insert(0, f"Compatible with {brand}" if t >= cat["n_prim"] else f"Genuine {brand} {tname}")
    details = {"Brand": store, "Model Number": model}
    if colour_txt:
        details["Color"] = colour.title()
    images = []
    if cat["has_image"][k]:
        base = f"https://images.synthetic.invalid/I/{item_id}"
        images = [{"thumb": f"{base}._SS40_.jpg", "large": f"{base}._SL500_.jpg",
                   "hi_res": f"{base}._SL1500_.jpg", "variant": "MAIN"}]
    return {"main_category": "Appliances", "title": title, "average_rating": round(float(rng.uniform(3.0, 5.0)), 1),
            "rating_number": int(rng.integers(1, 5000)), "features": feats, "description": desc,
            "price": round(float(rng.uniform(8, 2500)), 2) if rng.random() < 0.7 else None, "images": images,
            "videos": [], "store": store, "categories": cats, "details": details, "parent_asin": item_id,
            "bought_together": None}


def draw_image(cat, k, types, size):
    """A product picture: the type as a shape, filled with the item's colour, the brand as a mark."""
    from PIL import Image, ImageDraw

    t = int(cat["type"][k])
    tname = types[t]
    shape = PRIMARY[tname][2] if t < cat["n_prim"] else ACCESSORY[tname][2]
    rgb = list(COLOURS.values())[cat["colour"][k]][0]
    outline = (0, 0, 0) if sum(rgb) > 200 else (200, 200, 200)
    im = Image.new("RGB", (size, size), (226, 230, 236))  # light studio backdrop
    d = ImageDraw.Draw(im)
    s = size / 64.0

    def box(x0, y0, x1, y1):
        return [x0 * s, y0 * s, x1 * s, y1 * s]

    if shape == "tall":
        d.rectangle(box(18, 4, 46, 60), fill=rgb, outline=outline)
        d.line(box(18, 24, 46, 24), fill=outline)
        d.line(box(42, 8, 42, 20), fill=outline, width=max(1, int(2 * s)))
    elif shape == "round":
        d.rectangle(box(10, 8, 54, 58), fill=rgb, outline=outline)
        d.ellipse(box(18, 20, 46, 48), fill=(210, 225, 235), outline=outline)
    elif shape == "box":
        d.rectangle(box(10, 10, 54, 56), fill=rgb, outline=outline)
        d.rectangle(box(16, 14, 48, 18), fill=outline)
    elif shape == "range":
        d.rectangle(box(8, 18, 56, 60), fill=rgb, outline=outline)
        for x in (14, 34):
            for y in (4, 10):
                d.ellipse(box(x, y, x + 12, y + 6), outline=(60, 60, 60))
        d.rectangle(box(14, 30, 50, 52), fill=(40, 40, 40))
    elif shape == "wide":
        d.rectangle(box(4, 16, 60, 48), fill=rgb, outline=outline)
        d.rectangle(box(9, 21, 42, 43), fill=(30, 30, 30))
    elif shape == "hood":
        d.polygon([(22 * s, 6 * s), (42 * s, 6 * s), (58 * s, 40 * s), (6 * s, 40 * s)], fill=rgb, outline=outline)
    elif shape == "cylinder":
        d.rounded_rectangle(box(24, 6, 40, 58), radius=6 * s, fill=rgb, outline=outline)
    elif shape == "flat":
        d.rectangle(box(4, 28, 60, 36), fill=rgb, outline=outline)
    elif shape == "ring":
        d.ellipse(box(8, 8, 56, 56), outline=rgb, width=max(2, int(7 * s)))
    elif shape == "hose":
        d.arc(box(6, 6, 58, 58), 30, 330, fill=rgb, width=max(2, int(8 * s)))
    elif shape == "circle":
        d.ellipse(box(12, 12, 52, 52), fill=rgb, outline=outline)
    elif shape == "grid":
        for v in range(8, 60, 10):
            d.line(box(v, 8, v, 56), fill=rgb, width=max(1, int(3 * s)))
            d.line(box(8, v, 56, v), fill=rgb, width=max(1, int(3 * s)))
    else:  # line
        d.rectangle(box(6, 28, 58, 36), fill=rgb, outline=outline)
    mark = BRAND_RGB[(int(cat["brand"][k]) if t < cat["n_prim"] else len(BRANDS) + int(cat["maker"][k])) % len(BRAND_RGB)]
    d.rectangle(box(0, 0, 7, 7), fill=mark)
    return im


def _write_gz(path, chunks, level):
    with replacing(path) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                    compresslevel=level) as gz:
            buf = []
            for line in chunks:
                buf.append(line)
                if len(buf) >= 20000:
                    gz.write(b"\n".join(buf) + b"\n")
                    buf = []
            if buf:
                gz.write(b"\n".join(buf) + b"\n")


def synthesize(out, users=30000, items=2000, seed=0, category="Appliances", images=True, image_size=64,
               activity_exponent=3.5, complement_prob=0.6, colour_text_frac=0.3, popularity_sigma=2.0,
               missing_meta_frac=0.01, missing_image_frac=0.05, max_user_reviews=300, compresslevel=6,
               force=False, progress=False):
    """Write the synthetic raw files into ``out`` (see the module docstring) and return a summary dict."""
    if users < 1 or items < 1:
        raise DatasetError(f"users and items must be >= 1 (got users={users}, items={items})")
    if activity_exponent <= 1.0:
        raise DatasetError(f"activity_exponent must be > 1 (got {activity_exponent})")
    os.makedirs(out, exist_ok=True)
    reviews_path = os.path.join(out, f"{category}.jsonl.gz")
    meta_path = os.path.join(out, f"meta_{category}.jsonl.gz")
    img_dir = os.path.join(out, "images")
    if not force:
        for p in (reviews_path, meta_path, img_dir):
            if os.path.exists(p):
                raise DatasetError(f"{p} already exists; pass --force (force=True) to overwrite")
    rng = np.random.default_rng(seed)
    cat = _catalogue(rng, items, colour_text_frac, popularity_sigma, missing_meta_frac, missing_image_frac)
    types = cat["types"]
    item_ids = _unique_item_ids(rng, items)
    user_ids = _random_ids(rng, users, "A", 27)
    ev_user, ev_item, ts, _ = _sequences(rng, cat, users, activity_exponent, complement_prob, max_user_reviews)
    rev_rng = np.random.default_rng([seed, 1])
    n_rev = [0]

    def counted(lines):
        for line in lines:
            n_rev[0] += 1
            yield line

    _write_gz(reviews_path, counted(_review_lines(rev_rng, cat, item_ids, user_ids, ev_user, ev_item, ts, types)),
              compresslevel)
    meta_rng = np.random.default_rng([seed, 2])
    _write_gz(meta_path, (_dumps(_meta_record(meta_rng, k, cat, item_ids[k], types))
                          for k in range(items) if cat["has_meta"][k]), compresslevel)
    n_images = 0
    if images:
        tmp_dir = os.path.join(out, f".images.tmp-{os.getpid()}")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        os.makedirs(tmp_dir)
        try:
            it = range(items)
            if progress:
                from tqdm import tqdm

                it = tqdm(it, desc="drawing images", leave=False)
            for k in it:
                if cat["has_image"][k]:
                    draw_image(cat, k, types, image_size).save(os.path.join(tmp_dir, f"{item_ids[k]}.png"),
                                                               optimize=False)
                    n_images += 1
            if os.path.exists(img_dir):
                shutil.rmtree(img_dir)
            os.replace(tmp_dir, img_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
    colours = list(COLOURS)
    truth_path = os.path.join(out, "items_truth.tsv")
    with replacing(truth_path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("item_id\ttype\tkind\tbrand\tstore\tcolour\tcolour_in_text\thas_meta\thas_image\n")
        for k in range(items):
            t = int(cat["type"][k])
            prim = t < cat["n_prim"]
            f.write(f"{item_ids[k]}\t{types[t]}\t{'primary' if prim else 'accessory'}\t{BRANDS[cat['brand'][k]]}\t"
                    f"{BRANDS[cat['brand'][k]] if prim else PART_MAKERS[cat['maker'][k]]}\t{colours[cat['colour'][k]]}\t"
                    f"{int(cat['colour_in_text'][k])}\t{int(cat['has_meta'][k])}\t"
                    f"{int(cat['has_image'][k] and images)}\n")
    summary = {"seed": seed, "users": users, "items": items, "category": category, "reviews": n_rev[0],
               "meta_records": int(cat["has_meta"].sum()), "images": n_images, "image_size": image_size,
               "activity_exponent": activity_exponent, "complement_prob": complement_prob,
               "colour_text_frac": colour_text_frac, "popularity_sigma": popularity_sigma,
               "missing_meta_frac": missing_meta_frac, "missing_image_frac": missing_image_frac,
               "files": {"reviews": os.path.basename(reviews_path), "meta": os.path.basename(meta_path),
                         "images": "images" if images else None, "truth": "items_truth.tsv"}}
    with open(os.path.join(out, "synth.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    summary["paths"] = {"reviews": reviews_path, "meta": meta_path, "images": img_dir if images else None}
    return summary
