"""make_labels: pseudo labels from fused maps = background cue + dense CRF.

Background cue (`bg_cue.type`):
  constant  - a fixed background score (psa evaluates CAMs with 0.20, IRN with 0.15);
  power     - (1 - max_c M_c)^alpha, psa's cue (alpha 4 gives confident foreground, 24-32 background);
  saliency  - background where the saliency map is below `saliency_threshold` (MDC: 0.06).
Then an optional dense CRF (`crf.preset`: psa, irn or none; any preset value can be overridden).
Pixels whose final probability is below `confidence` are set to 255 ("ignore").

MDC, FickleNet and SeeNet label with their paper's own rule instead (saliency as background;
`<method>.labels.rule: paper`); `rule: shared` gives them the cue + CRF above.

Images are labelled in `threads` worker processes (wsss.parallel): the CRF runs on one core per
image, so the stage scales with the rule's threads. One job labels one shard of the split.
"""

import numpy as np
from tqdm import tqdm

from wsss import shards
from wsss.crf import PRESETS, dense_crf
from wsss.data.voc import IGNORE, VOCDataset
from wsss.errors import WsssError
from wsss.io import StoreReader, StoreWriter
from wsss.methods import METHODS
from wsss.parallel import ordered_map, shared


def background_score(cue, maps, saliency=None):
    """maps: (K', H, W) in [0, 1] -> background score (H, W)."""
    kind = cue["type"]
    if kind == "constant":
        return np.full(maps.shape[1:], cue["score"], np.float32)
    if kind == "power":
        peak = maps.max(0) if len(maps) else np.zeros(maps.shape[1:], np.float32)
        return np.power(1 - peak, cue["alpha"]).astype(np.float32)
    if kind == "saliency":
        return (saliency < cue["saliency_threshold"]).astype(np.float32)
    raise WsssError(f"labels.bg_cue.type: unknown cue {kind!r}; choose constant, power or saliency")


def crf_settings(crf):
    """The preset's values with the user's overrides (None means "keep the preset's")."""
    preset = crf["preset"]
    if preset == "none":
        return None
    if preset not in PRESETS:
        raise WsssError(f"labels.crf.preset: unknown preset {preset!r}; choose {', '.join(PRESETS)} or none")
    overrides = {k: v for k, v in crf.items() if k != "preset" and v is not None}
    return {**PRESETS[preset], **overrides}


def pseudo_label(image, maps, present, cue, crf, confidence, saliency=None):
    """image (H, W, 3) uint8, maps (K', H, W), present (K',) 1-based -> uint8 label (H, W)."""
    scores = np.concatenate([background_score(cue, maps, saliency)[None], maps])  # (K'+1, H, W)
    if crf is not None:
        probs = dense_crf(image, scores, **crf)
    else:
        probs = scores / np.maximum(scores.sum(0, keepdims=True), 1e-5)
    lookup = np.concatenate([[0], present]).astype(np.uint8)
    label = lookup[probs.argmax(0)]
    label[probs.max(0) < confidence] = IGNORE
    return label


def label_rule(method, own, bg_cue, crf, confidence):
    """-> (rule(image, maps, present, saliency) -> uint8 label, whether it reads saliency).

    own: the method's `labels` block ({rule: paper | shared, ...its settings}) or None."""
    own = dict(own or {})
    if own.pop("rule", "shared") == "paper":
        paper = getattr(METHODS.get(method), "pseudo_label", None)
        if paper is None:
            raise WsssError(f"{method}.labels.rule: {method} has no label rule of its own; use shared")
        return (lambda image, maps, present, sal: paper(maps, present, sal, **own)), True
    crf = crf_settings(crf)

    def shared(image, maps, present, sal):
        return pseudo_label(image, maps, present, bg_cue, crf, confidence, sal)
    return shared, bg_cue["type"] == "saliency"


def run(fused, root, classes, split, output, bg_cue, crf, confidence, method=None, own=None, saliency=None,
        threads=1, shard=None):
    """bg_cue, crf, confidence: the shared labels block (None for a method with its own rule).
    fused: the fused maps of this shard; shard: "i-of-n" (None = the whole split)."""
    voc = VOCDataset(root, classes, split, saliency)
    ids = shards.select(voc.ids, shard)
    rule, needs_saliency = label_rule(method, own, bg_cue, crf, confidence)
    params = {"fused": str(fused), "shard": shard, "own": own}
    if bg_cue is not None:  # labelled by the shared cue + CRF
        params.update(bg_cue=bg_cue, crf=crf_settings(crf), confidence=confidence)
    with StoreReader(fused) as reader, StoreWriter(
        output, "make_labels", reader.attrs.get("method"), reader.classes, params
    ) as store:
        shared(voc=voc, reader=reader, rule=rule, needs_saliency=needs_saliency)  # seen by the workers
        labels = ordered_map(label_one, ids, max(1, threads))
        for image_id, label in tqdm(zip(ids, labels), total=len(ids), desc=f"make_labels {split}", mininterval=5):
            store.write(image_id, {"label": label})


def label_one(image_id):
    """The pseudo label of one image (runs in a worker process)."""
    state = shared()
    arrays, attrs = state["reader"].read(image_id)
    maps = arrays["map"].astype(np.float32)  # (K', H, W)
    sal = state["voc"].saliency(image_id) if state["needs_saliency"] else None
    return state["rule"](state["voc"].image(image_id), maps, attrs["classes"], sal)
