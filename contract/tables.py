"""Every lake table, defined once: name, location under the lake root, schema, partitioning.

No Spark here: the JVM-free side of the project (teacher training on GPU nodes, the deltalake
and DuckDB readers, the quality gates) shares these definitions with the Spark jobs, which build
their StructType from them in `jobs/core/delta.py`.

`docs/TABLES.md` is generated from these definitions (`python -m contract.tables > docs/TABLES.md`)
and a test keeps the two in step, so the documented contract cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.layout import lake_root


@dataclass(frozen=True)
class Column:
    name: str
    # string | long | int | double | float | timestamp | array<T> | struct<name: T, ...>
    type: str
    doc: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str  # SQL name, "<database>.<table>"
    doc: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = ("ds",)
    writer: str = ""

    @property
    def relative_path(self) -> str:
        return self.name.replace(".", "/")

    def path(self, lake: str) -> str:
        return str(lake_root(lake) / self.relative_path)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


DS = Column("ds", "string", "Run date `YYYY-MM-DD` that produced the row (partition column).")


def _cols(*columns: Column) -> tuple[Column, ...]:
    return (*columns, DS)


RAW_INTERACTIONS = Table(
    "raw.interactions",
    "Validated interaction log as ingested for a run date: one row per (user, item, event). "
    "Each `ds` partition is the full log as of that date, so every downstream job for `ds` reads "
    "exactly one partition and a re-run or backfill of one date never touches another.",
    _cols(
        Column("user_id", "long", "User id from the source."),
        Column("item_id", "long", "Item id; always present in `raw.items` for the same `ds`."),
        Column("event_ts", "timestamp", "When the interaction happened (UTC)."),
        Column("rating", "double", "Explicit rating when the source has one; null otherwise.", True),
    ),
    writer="ingest",
)

RAW_ITEMS = Table(
    "raw.items",
    "Item catalogue with the text the models read. Includes items nobody has interacted with.",
    _cols(
        Column("item_id", "long", "Item id, unique per `ds`."),
        Column("title", "string", "Display title."),
        Column("genres", "array<string>", "Genres or categories, source order."),
        Column("tags", "array<string>", "User tags, most frequent first (empty when none)."),
        Column("text", "string", "Title, genres, tags, description, in that order, with every "
               "tag ingested whenever it was written. Models never read it: they read "
               "`features.items.text`, which keeps only the tags that existed at the cut-off."),
        Column("description", "string", "Free text of the source (synthetic data, csv/parquet "
               "`--item-text-cols`); null when the source has none.", True),
    ),
    writer="ingest",
)

RAW_TAGS = Table(
    "raw.tags",
    "Validated tag events: who tagged which item when. Kept as events so that features can use "
    "a tag only from the moment it was written (empty for sources without tags).",
    _cols(
        Column("user_id", "long", "Author of the tag."),
        Column("item_id", "long", "Tagged item; always present in `raw.items` for the same `ds`."),
        Column("tag", "string", "The tag, trimmed and lower-cased."),
        Column("event_ts", "timestamp", "When the tag was written (UTC)."),
    ),
    writer="ingest",
)

RAW_QUARANTINE = Table(
    "raw.quarantine",
    "Rows ingest refused, with why. Nothing is dropped silently: every input row lands either in "
    "`raw.interactions`/`raw.items` or here.",
    _cols(
        Column("source_table", "string", "`interactions`, `items` or `tags`."),
        Column("reason", "string", "The first check the row failed. Every table, from CSV "
               "sources: invalid_encoding (not UTF-8), malformed_row (more or fewer fields than "
               "the header or format). interactions, in this order: invalid_user_id, invalid_item_id, "
               "invalid_timestamp, timestamp_out_of_range (outside `--min-event-ts` .. "
               "`--max-event-ts`, by default 1970-01-01 .. ds + 1 day), invalid_rating, "
               "non_finite_rating (NaN or infinite), rating_out_of_range, unknown_item, "
               "duplicate (exact repeat of a kept row). items: invalid_item_id, then of the rows "
               "sharing an id the one whose record sorts first is kept and each other is a "
               "duplicate (same title, genres and description) or a conflicting_duplicate. tags: "
               "invalid_user_id, invalid_item_id, invalid_timestamp, timestamp_out_of_range, "
               "invalid_tag, unknown_item."),
        Column("record", "string", "The refused row as JSON, as read from the source. An "
               "unreadable row's: `{\"line\": <its text>}` for malformed_row; for "
               "invalid_encoding `{\"fields\": {...}, \"base64\": {<field>: <its bytes>}}`, "
               "the fields with undecodable bytes shown as U+FFFD and the exact bytes of those "
               "fields in base64."),
    ),
    writer="ingest",
)

RAW_INGEST_RUNS = Table(
    "raw.ingest_runs",
    "The commit marker of ingest, which makes one ingest of one `ds` all-or-nothing: one row per "
    "`ds` whose ingest finished, written by its last commit, after `raw.items`, `raw.tags`, "
    "`raw.interactions` and `raw.quarantine`. Readers of those tables for a `ds` (`read_partition` "
    "in `jobs/core/delta.py` and `contract/delta_reader.py`, so every step, and `recs check`) read "
    "them as this row records, so a run killed or failed between two commits leaves the "
    "previous ingest of `ds` readable, whole, until a rerun commits; a `ds` without a row is "
    "refused as not committed. Readers of the tables' latest version that bypass it (SQL "
    "over the Delta tables) may see the partitions of an ingest that has not committed.",
    _cols(
        Column("run_id", "string", "Id of the ingest run whose rows readers see for `ds`."),
        Column("source", "string", "That run's `--source`."),
        Column("committed_at", "timestamp", "When that run wrote this row, its last commit (UTC)."),
        Column("tables", "array<struct<name: string, version: long, num_rows: long>>",
               "For each of the four raw tables: the Delta version holding that run's rows for "
               "`ds` and their number. Readers read that version, or a later one while no ingest "
               "of `ds` is pending (later commits then only wrote other dates or rewrote files "
               "without changing rows, e.g. OPTIMIZE), which holds the same rows."),
        Column("input_rows", "array<struct<source_table: string, num_rows: long>>",
               "Rows read from the source per `source_table` (`interactions`, `items`, `tags`): "
               "each equals the rows kept in `raw.<source_table>` plus those quarantined with "
               "that `source_table`; ingest commits nothing otherwise."),
        Column("pending_run_id", "string", "An ingest of `ds` that started writing after "
               "`run_id` and has not committed (still running, or killed or failed between two "
               "commits): until one commits, readers read `ds` at the versions in `tables`. Null "
               "when none; rerunning ingest for `ds` commits.", True),
        Column("pending_since", "timestamp", "When that ingest started writing (UTC).", True),
    ),
    writer="ingest",
)

FEATURES_TRAIN = Table(
    "features.train_interactions",
    "Interactions the models may learn from, all strictly before `ds`. Evaluation mode: each "
    "user's chronological head (split of `../shared/EVALUATION.md`). Nightly mode: all of them.",
    _cols(
        Column("user_id", "long", "User id."),
        Column("item_id", "long", "Item id."),
        Column("event_ts", "timestamp", "Interaction time (UTC)."),
        Column("rating", "double", "Source rating, null when the source has none.", True),
    ),
    writer="build-training-set",
)

FEATURES_TEST = Table(
    "features.test_interactions",
    "Held-out interactions for evaluation (each evaluated user's chronological tail). Empty in "
    "nightly mode. Never read by any training, candidate or baseline code.",
    FEATURES_TRAIN.columns,
    writer="build-training-set",
)

FEATURES_EXAMPLES = Table(
    "features.training_examples",
    "Labelled examples for the teacher: one positive per train interaction that has history, "
    "plus sampled negatives sharing its history. History is strictly earlier than the target.",
    _cols(
        Column("example_group", "long", "Id shared by one positive and its negatives."),
        Column("user_id", "long", "User id."),
        Column("item_id", "long", "Candidate item (the target for label 1, a sampled negative "
               "for label 0)."),
        Column("label", "int", "1 = the user interacted with item_id at target_ts, 0 = sampled "
               "negative (popularity-weighted, never one of the user's train positives; test "
               "items are not consulted, so a negative may coincide with one)."),
        Column("target_ts", "timestamp", "Time of the positive interaction of the group."),
        Column("split", "string", "`train` or `valid`: valid is each user's latest train "
               "targets, for early stopping and every other choice of settings (the models are "
               "then refitted on train and valid rows together); never the test holdout."),
        Column("history_item_ids", "array<long>", "Most recent items strictly before target_ts, "
               "most recent first."),
        Column("history_texts", "array<string>", "Text of history_item_ids, same order."),
        Column("item_text", "string", "Text of item_id."),
    ),
    writer="build-training-set",
)

FEATURES_USER_HISTORY = Table(
    "features.user_history",
    "Each user's most recent train items as of the end of the training data: the input for "
    "scoring and evaluation.",
    _cols(
        Column("user_id", "long", "User id."),
        Column("history_item_ids", "array<long>", "Most recent train items, most recent first."),
        Column("history_texts", "array<string>", "Text of history_item_ids, same order."),
        Column("num_train_interactions", "long", "All train interactions of the user."),
    ),
    writer="build-training-set",
)

FEATURES_ITEMS = Table(
    "features.items",
    "The catalogue as models see it for a run: every item of `raw.items`, with the text "
    "composed from point-in-time tags only. Evaluation mode: a tag counts only if written no "
    "later than its author's last train interaction (a user's test period never leaks into item "
    "text). Nightly mode: only tags written before `ds`.",
    _cols(
        Column("item_id", "long", "Item id (every item of raw.items for the same ds)."),
        Column("title", "string", "Display title."),
        Column("genres", "array<string>", "Genres or categories, source order."),
        Column("tags", "array<string>", "Point-in-time tags, most frequent first."),
        Column("text", "string", "What models read: title, genres, point-in-time tags, "
               "description, in that order."),
    ),
    writer="build-training-set",
)

RECS_CANDIDATES = Table(
    "recs.candidates",
    "User-item pairs to score for a run, above the limit on users x items: each user's top N "
    "from the first stage. Under it the pairs are every item the user has not interacted with, "
    "which `recs score` generates and scores itself: none are written unless "
    "`recs generate-candidates --write-all-pairs` (for inspection).",
    _cols(
        Column("user_id", "long", "User id (every user of features.user_history)."),
        Column("item_id", "long", "Candidate item, never one of the user's train items."),
        Column("source", "string", "`all` (every unseen item) or `first_stage` (student towers "
               "in blocked matrix products, plus popularity)."),
    ),
    writer="generate-candidates",
)

RECS_SCORES = Table(
    "recs.scores",
    "The served model's score for every candidate pair of a run.",
    _cols(
        Column("user_id", "long", "User id."),
        Column("item_id", "long", "Item id."),
        Column("score", "double", "Student score (higher = more likely to interact); comparable "
               "within one model_version only."),
        Column("model_version", "string", "Model that produced the score."),
    ),
    writer="score",
)

TOP_K_BECAUSE = Column(
    "because", "array<struct<item_id: long, contribution: double>>",
    "Why the item is recommended: up to 3 items of the user's own history "
    "(features.user_history, so all before `ds`) that the score owes most to, each with its "
    "`contribution`, largest first. The student's score (`score` plus the popularity "
    "correction, a term of the item alone) splits exactly into one term per history item plus "
    "a bias term; a contribution is that item's term, not an estimate. Items "
    "are chosen by the part of their term the user vector does not already give every "
    "candidate (docs/MODELS.md, Student), and only items that raise the score are named (an "
    "empty array: none does). Null in partitions written before the column existed or by "
    "`recs score --no-explain`.", True)

RECS_TOP_K = Table(
    "recs.top_k",
    "Each user's K best candidates of a run (K from `recs score --k`, default 100).",
    _cols(
        Column("user_id", "long", "User id."),
        Column("rank", "int", "1 = best; ties broken by item_id."),
        Column("item_id", "long", "Item id."),
        Column("score", "double", "Same as recs.scores.score."),
        Column("model_version", "string", "Model that produced the score."),
        TOP_K_BECAUSE,
    ),
    writer="score",
)

RECS_MODEL_REGISTRY = Table(
    "recs.model_registry",
    "Every publish decision: a model version becomes current only if its student's validation "
    "NDCG@10 is not worse than the current one's beyond a tolerance. The current model is the "
    "latest `published` row.",
    _cols(
        Column("model_version", "string", "Version directory under <lake>/models/."),
        Column("student_dir", "string", "Student artifact path."),
        Column("valid_ndcg", "double", "The student's validation NDCG@10."),
        Column("previous_version", "string", "Current model before this decision.", True),
        Column("previous_valid_ndcg", "double", "Its validation NDCG@10.", True),
        Column("decision", "string", "`published` or `rejected`."),
        Column("reason", "string", "Why, with the figures compared."),
        Column("decided_at", "timestamp", "When the decision was made (UTC)."),
    ),
    writer="publish",
)

RECS_EVAL_METRICS = Table(
    "recs.eval_metrics",
    "Offline metrics of every model evaluated in a run, all on the same split and protocol "
    "(`../shared/EVALUATION.md`): the served student, the teacher, and the baselines.",
    _cols(
        Column("model_version", "string", "Version of the model under evaluation in this run "
               "(baselines carry the run's version so one run's rows group together)."),
        Column("model", "string", "student, teacher, popularity, als, ease or tfidf; "
               "student-no-teacher (the same student distilled without the teacher) and "
               "distillation_gain (served student minus it, paired over users); or "
               "`student@beta=<b>` (e.g. student@beta=0.1): the served student's artifact ranked "
               "with popularity correction strength b (score - b x log(1 + train interactions), "
               "models/debias.py), one model per beta of the grid, metrics ndcg@10 and "
               "tail_share@10 only: the debiasing trade-off curve (b = cast(substring_index(model, "
               "'=', -1) as double))."),
        Column("metric", "string", "ndcg@10, recall@20, coverage@10, evaluated_users; cold "
               "start: cold_recall@20 (recall of cold test items in the full ranking), "
               "cold_top20_share (share of cold test interactions in the full top 20), "
               "cold_only_recall@20 (ranking only cold items; models that read text); popularity "
               "bias (models/popularity_bias.py; popularity = train interactions, tail = the 80% "
               "least-popular items): gini@10 (Gini index of top-10 slots per catalogue item), "
               "popularity_percentile@10, tail_share@10 (share of top-10 slots on tail items), "
               "novelty@10 (mean -log2 of the smoothed train share), tail_ndcg@10 and "
               "tail_recall@20 (only tail test items relevant); the student's explanations "
               "(recs.top_k.because, models/explanation_fidelity.py, on a seeded sample of rows, "
               "intervals over those rows): explanation_score_drop_share (share of rows whose "
               "score falls when the top named history item is removed), "
               "explanation_rank_drop_vs_random_share (share whose rank falls further than when "
               "a random other history item is removed), explanation_sampled_rows, "
               "explanation_unexplained_rows and explanation_single_item_rows (rows not measured: "
               "nothing named; nothing else in the history); or `absent`: the model could not "
               "be measured (see note)."),
        Column("value", "double", "The metric's mean over evaluated users (or the count); NaN "
               "for `absent`."),
        Column("ci_low", "double", "Lower end of the value's 95% bootstrap interval over evaluated "
               "users (1,000 resamples); null for counts, coverage@10 and gini@10.", True),
        Column("ci_high", "double", "Upper end of that interval.", True),
        Column("note", "string", "Why a model has no figures in this run (metric `absent`: its "
               "input, e.g. its artifact or recs.top_k, is missing); on ease's rows, the lambda "
               "chosen on the validation split and the validation NDCG@10 of every lambda tried; "
               "on the `student@beta=<b>` rows of the beta the student is served with, "
               "`the served student's popularity_beta`; null on other measured rows.", True),
    ),
    writer="evaluate",
)

ALL_TABLES: tuple[Table, ...] = (
    RAW_INTERACTIONS,
    RAW_ITEMS,
    RAW_TAGS,
    RAW_QUARANTINE,
    RAW_INGEST_RUNS,
    FEATURES_ITEMS,
    FEATURES_TRAIN,
    FEATURES_TEST,
    FEATURES_EXAMPLES,
    FEATURES_USER_HISTORY,
    RECS_CANDIDATES,
    RECS_SCORES,
    RECS_TOP_K,
    RECS_EVAL_METRICS,
    RECS_MODEL_REGISTRY,
)

BY_NAME = {t.name: t for t in ALL_TABLES}


def markdown() -> str:
    lines = [
        "# Lake tables",
        "",
        "Generated from `contract/tables.py` by `python -m contract.tables > docs/TABLES.md`; a test fails",
        "when this file and the code disagree. These schemas are a contract for downstream SQL:",
        "columns are only ever added, never renamed or retyped.",
        "",
        "Every table is a Delta table at `<lake>/<database>/<table>` (default lake `./lake`).",
        "Per-run outputs are partitioned by `ds`, and each job replaces exactly its `ds` partition",
        "in one Delta commit (`replaceWhere`), so a re-run or backfill is idempotent and a failed",
        "run leaves the previous version readable. Ingest writes four raw tables and is",
        "all-or-nothing per `ds` all the same, through its commit marker `raw.ingest_runs`.",
        "",
    ]
    for t in ALL_TABLES:
        part = ", ".join(t.partition_by) or "none"
        lines += [
            f"## `{t.name}`",
            "",
            t.doc,
            "",
            f"Path `<lake>/{t.relative_path}`; partitioned by {part}; written by `recs {t.writer}`.",
            "",
            "| column | type | nullable | meaning |",
            "|---|---|---|---|",
        ]
        lines += [f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.doc} |"
                  for c in t.columns]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
