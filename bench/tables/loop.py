"""Tables of the labelling loop and of distillation (docs/how-to/loop.md, docs/how-to/distillation.md)."""

from __future__ import annotations

from .common import load, machine, num, table

__all__ = ["loop_decisions", "loop_decisions_full", "loop_rules", "label_review_floor", "distill"]


def loop_decisions() -> list[str]:
    data = load("loop_decisions")
    rows = [
        [
            r["dataset"],
            r["strategy"],
            str(r["labels"]),
            num(r["f1_rule"]),
            num(r["f1_oracle"]),
            num(r["roc_auc"]),
            num(r["audit"]),
            num(r["covered"], 2),
            num(r["shown_auc"]),
            num(r["zero_shot_auc"]),
        ]
        for r in data["table"]
        if r["labels"] in (8, 16, 24, 32, 64, 128, 256)
    ]
    v = data["verdict"]
    lines = table(
        [
            "dataset",
            "strategy",
            "labels",
            "F1 at the rule",
            "F1 at the best test cut",
            "ROC-AUC",
            "audit F1",
            "interval covers test",
            "suggestions' AUC",
            "zero-shot AUC",
        ],
        rows,
    )
    lines += ["", f"Measured with {machine(data)} Means over seeds {sorted({r['seed'] for r in data['runs']})}."]
    yes = {True: "yes", False: "no"}
    checks = [
        [
            "F1 at the rule ≥ 0.9 × the best test cut, from 32 labels",
            f"lowest ratio {num(v['rule_vs_oracle_min_ratio_from_32'])}",
            yes[bool(v["rule_vs_oracle_met"])],
        ],
        [
            "F1 never 0 once each class has 2 labels",
            f"{v['f1_zero_rounds']} rounds at 0",
            yes[v["f1_zero_rounds"] == 0],
        ],
        [
            "suggestions' AUC ≥ zero-shot AUC − 0.01 at 8, 16, 24 labels",
            f"smallest margin {num(v['cold_start_min_margin'])}",
            yes[bool(v["cold_start_met"])],
        ],
        [
            "audit interval covers the test value in ≥ 80% of rounds from 64 labels",
            f"{num(v['audit_coverage_from_64'], 2)} of {v['audit_rounds_with_estimate_from_64']} rounds "
            "with an estimate",
            yes[bool(v["audit_met"])],
        ],
    ]
    step = data.get("loop_step")
    if step:
        checks.append(
            [
                f"loop step ≤ 1 s on a {step['pool']:,}-text pool",
                f"median {step['median']:.2f} s, best {step['best']:.2f} s",
                yes[step["median"] <= 1],
            ]
        )
    lines += ["", *table(["target", "measured", "met"], checks)]
    return lines


def loop_decisions_full() -> list[str]:
    data = load("loop_decisions_full")
    rows = []
    for run in data["runs"]:
        fast = {r["labels"]: r for r in run["rounds"]}
        for f in run["full"]:
            r = fast.get(f["total_labels"], {})
            if "error" in f:
                rows.append([run["dataset"], str(run["seed"]), f"({f['total_labels']} in all)", f["error"], *[""] * 6])
                continue
            rows.append(
                [
                    run["dataset"],
                    str(run["seed"]),
                    str(f["labels"]),
                    num(f["f1"]),
                    num(r.get("f1")),
                    num(f["roc_auc"]),
                    num(f["audit"]),
                    num(f["serving_audit_before"]),
                    "yes" if f["serves"] else "no",
                    f"{f['seconds']} s",
                ]
            )
    lines = table(
        [
            "dataset",
            "seed",
            "training labels",
            "full F1",
            "fast F1",
            "full ROC-AUC",
            "full audit F1",
            "serving audit F1 before",
            "serves",
            "fit",
        ],
        rows,
    )
    refs = data.get("references") or {}
    if refs:
        lines += [
            "",
            *table(
                ["dataset", "stacked recipe on every pool row: F1", "rows", "fit"],
                [[k, num(r["f1"]), str(r["rows"]), f"{r['fit_seconds']} s"] for k, r in refs.items()],
            ),
        ]
    lines += ["", f"Measured with {machine(data)}"]
    return lines


def loop_rules() -> list[str]:
    data = load("loop_rules")
    lines = table(
        ["rule", "mean F1 / best cut", "rounds under 0.9", "worst"],
        [[r["rule"], num(r["mean F1 / oracle"]), str(r["rounds under 0.9"]), num(r["worst"])] for r in data["summary"]],
    )
    err = data["share_error"]
    lines += [
        "",
        f"Mean absolute error of the rare class's share among the unlabelled texts: EM to convergence "
        f"{num(err['em'])}, its first step (the mean probability) {num(err['mean_p'])}.",
        "",
        f"Measured with {machine(data)}",
    ]
    return lines


def label_review_floor() -> list[str]:
    data = load("label_review_floor")
    names = list(dict.fromkeys(r["dataset"] for r in data["rows"]))
    counts = sorted({r["per class"] for r in data["rows"]})
    cell = {(r["dataset"], r["per class"]): r for r in data["rows"]}
    lines = table(
        ["labels per class", *[f"{n}: precision at k (lift)" for n in names]],
        [
            [str(c), *[f"{cell[(n, c)]['precision at k']:.2f} ({cell[(n, c)]['lift']:.1f}×)" for n in names]]
            for c in counts
        ],
    )
    lines += [
        "",
        f"Smallest count with a median lift of at least {data['min_lift']:g} over the datasets: "
        f"**{data['floor']}**. Measured with {machine(data)}",
    ]
    return lines


def distill() -> list[str]:
    data = load("distill")
    summary = data["summary"]
    header = [
        "dataset",
        "model",
        "agilecls encoders",
        "seeds",
        "ROC-AUC",
        "F1",
        "macro F1",
        "ECE",
        "fit s",
        "predict texts/s",
    ]
    rows = [
        [
            r["dataset"],
            r["model"],
            r.get("encoder_embedding", "fp32"),
            str(r["seeds"]),
            num(r.get("roc_auc")),
            num(r.get("f1")),
            num(r.get("f1_macro")),
            num(r.get("ece")),
            num(r.get("fit_seconds"), 0),
            num(r.get("texts_per_second"), 1),
        ]
        for r in summary
    ]
    flags = ", ".join(data["machine"].get("cpu_flags") or [])
    lines = table(header, rows) + [
        "",
        f"Measured with {machine(data)} CPU flags: {flags}; language models in "
        f"{data['machine']['dtype'].replace('torch.', '')}. Means over the seeds; "
        "F1 is the hateful "
        f"class's at each model's rule (ETHOS), macro F1 the tweets'. \"agilecls "
        f"encoders\" is how agilecls's sentence encoders embedded in that run "
        f"(SetFit's body runs in fp32).",
    ]

    def get(dataset, embedding, model, key):
        return next(
            (
                r.get(key)
                for r in summary
                if r["dataset"] == dataset
                and r["model"].startswith(model)
                and r.get("encoder_embedding", "fp32") == embedding
            ),
            None,
        )

    def verdict(ok) -> str:
        return "yes" if ok else "no"

    checks = []
    for dataset, embedding in dict.fromkeys((r["dataset"], r.get("encoder_embedding", "fp32")) for r in summary):
        key = "roc_auc" if dataset == "ethos" else "f1_macro"
        where = f"{dataset} ({embedding})"
        teacher, student, alone = (get(dataset, embedding, m, key) for m in ("teacher", "student", "labels only"))
        if None in (teacher, student, alone):
            continue
        checks.append(
            [
                f"{where}: student {key} within 0.01 of the teacher's and above labels only",
                f"{num(student)} vs teacher {num(teacher)}, labels only {num(alone)}",
                verdict(student >= teacher - 0.01 and student > alone),
            ]
        )
        speeds = [get(dataset, embedding, m, "texts_per_second") for m in ("teacher", "student", "SetFit")]
        if None not in speeds:
            checks.append(
                [
                    f"{where}: student predicts ≥ 8× the teacher's texts/s and ≥ SetFit's",
                    f"{speeds[1]:.0f} vs teacher {speeds[0]:.1f} ({speeds[1] / speeds[0]:.1f}×), "
                    f"SetFit {speeds[2]:.0f}",
                    verdict(speeds[1] >= 8 * speeds[0] and speeds[1] >= speeds[2]),
                ]
            )
        ece_s, ece_t = get(dataset, embedding, "student", "ece"), get(dataset, embedding, "teacher", "ece")
        target = 0.05 if dataset == "tweets" else ece_t
        checks.append(
            [
                f"{where}: student ECE ≤ " + ("0.05" if dataset == "tweets" else "the teacher's"),
                f"{num(ece_s)} (teacher {num(ece_t)})",
                verdict(ece_s <= target),
            ]
        )
    lines += ["", *table(["target", "measured", "met"], checks)]
    estimates = data.get("estimate_20k") or []
    if estimates:
        lines += [
            "",
            "Distilling 20,000 unlabelled texts, estimated from the rates measured above (no run on "
            "20,000 texts was made):",
            "",
            *table(
                ["texts like", "seed", "teacher labels texts/s", "student s per step", "minutes in all"],
                [
                    [
                        e["dataset"],
                        str(e["seed"]),
                        num(e["teacher_texts_per_s"], 1),
                        num(e["student_s_per_step"]),
                        num(e["minutes_for_20k"], 0),
                    ]
                    for e in estimates
                ],
            ),
        ]
    return lines
