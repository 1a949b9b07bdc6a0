"""A running server's state in a few numbers, read from its ``/metrics`` and ``/healthz``: what
``agilecls monitor`` prints.

Rates come from the difference of two readings of the counters; latency quantiles from the
histogram's buckets, interpolated linearly inside a bucket as Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families


def read_metrics(text: str) -> dict:
    """``{name: {labels tuple: value}}`` of every sample in Prometheus text."""
    samples: dict = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name][tuple(sorted(s.labels.items()))] = s.value
    return dict(samples)


def total(samples: dict, name: str, **match) -> float:
    """Sum of ``name``'s samples whose labels include ``match``."""
    return sum(v for labels, v in samples.get(name, {}).items() if set(match.items()) <= set(labels))


def histogram_quantile(samples: dict, name: str, q: float, **match) -> float | None:
    """The ``q`` quantile of histogram ``name`` (its ``_bucket`` samples), None without observations."""
    buckets: dict[float, float] = defaultdict(float)
    for labels, value in samples.get(f"{name}_bucket", {}).items():
        labels = dict(labels)
        if all(labels.get(k) == v for k, v in match.items()):
            buckets[float(labels["le"])] += value
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return None
    rank, lower, below = q * buckets[bounds[-1]], 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            inside = buckets[bound] - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, buckets[bound]
    return lower


def summarise(now: dict, health: dict, before: dict | None = None, seconds: float = 0.0) -> dict:
    """The server's state from a reading of ``/metrics`` (``now``, parsed by :func:`read_metrics`)
    and ``/healthz``; with an earlier reading ``before`` taken ``seconds`` earlier, the rates too."""
    texts_ok = total(now, "agilecls_texts_total", status="ok")
    by_label: dict[str, float] = defaultdict(float)
    for labels, value in now.get("agilecls_predicted_total", {}).items():
        by_label[dict(labels)["label"]] += value
    requests = now.get("agilecls_requests_total", {})
    errors = sum(v for labels, v in requests.items() if int(dict(labels)["status"]) >= 400)
    out = {"requests": total(now, "agilecls_requests_total"), "errors": errors, "texts": texts_ok,
           "queue_depth": total(now, "agilecls_queue_depth"),
           "latency_p50_s": histogram_quantile(now, "agilecls_request_seconds", 0.5, route="/v1/predict"),
           "latency_p95_s": histogram_quantile(now, "agilecls_request_seconds", 0.95, route="/v1/predict"),
           "label_shares": {k: round(v / texts_ok, 4) for k, v in sorted(by_label.items())} if texts_ok else {},
           "out_of_scope_share": round(total(now, "agilecls_out_of_scope_total") / texts_ok, 4) if texts_ok else None,
           "drift": {name: status["state"] for name, status in health.get("drift", {}).items()}}
    if before is not None and seconds > 0:
        out["texts_per_s"] = round((texts_ok - total(before, "agilecls_texts_total", status="ok")) / seconds, 2)
        out["requests_per_s"] = round((out["requests"] - total(before, "agilecls_requests_total")) / seconds, 2)
    return out


def summary_line(s: dict) -> str:
    """One terminal line of a :func:`summarise` result."""
    def ms(v):
        return "-" if v is None else f"{1000 * v:.0f} ms"

    rate = f"{s['texts_per_s']:.1f} texts/s, " if "texts_per_s" in s else ""
    shares = ", ".join(f"{k} {v:.0%}" for k, v in s["label_shares"].items()) or "no texts yet"
    oos = "" if s["out_of_scope_share"] is None else f"; out of scope {s['out_of_scope_share']:.0%}"
    drift = "; drift: " + ", ".join(f"{k} {v}" for k, v in s["drift"].items()) if s["drift"] else ""
    return (f"{rate}{s['texts']:.0f} texts, {s['requests']:.0f} requests ({s['errors']:.0f} errors), queue "
            f"{s['queue_depth']:.0f}, p50 {ms(s['latency_p50_s'])}, p95 {ms(s['latency_p95_s'])} "
            f"| {shares}{oos}{drift}")
