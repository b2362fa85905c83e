"""How an item's text is composed, in one place.

Ingest composes `raw.items.text` from every tag it has seen; build-training-set composes
`features.items.text`, the only text models read, from the tags that existed at the run's
cut-off (point in time). Both call `with_text`, so the two differ only in which tags count.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

MAX_TAGS_IN_TEXT = 10


def ranked_tags(tag_events: DataFrame) -> DataFrame:
    """(item_id, tag, ...) events -> (item_id, tags): most frequent first, ties alphabetical."""
    counted = (tag_events.groupBy("item_id", "tag").count()
               .groupBy("item_id")
               .agg(F.sort_array(F.collect_list(F.struct((-F.col("count")).alias("neg"), "tag")))
                    .alias("ranked")))
    return counted.select("item_id", F.transform("ranked", lambda s: s["tag"]).alias("tags"))


def with_text(items: DataFrame, tags: DataFrame | None) -> DataFrame:
    """Attach tags and the model-facing text: title. genres. top tags. description.

    `items`: item_id, title, genres, description; `tags`: item_id, tags (or None: no tags).
    """
    if tags is None:
        items = items.withColumn("tags", F.array().cast("array<string>"))
    else:
        items = (items.join(tags, "item_id", "left")
                 .withColumn("tags", F.coalesce("tags", F.array().cast("array<string>"))))
    parts = F.array(
        F.col("title"),
        F.array_join("genres", ", "),
        F.array_join(F.slice("tags", 1, MAX_TAGS_IN_TEXT), ", "),
        F.col("description"),
    )
    text = F.array_join(F.filter(parts, lambda p: p.isNotNull() & (p != "")), ". ")
    return (items.withColumn("text", text)
            .select("item_id", "title", "genres", "tags", "description", "text"))
