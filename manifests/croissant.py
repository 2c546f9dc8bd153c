"""A Croissant 1.0 JSON-LD description of a run's tokenized corpus, with the Croissant RAI 1.0 fields.

The @context is Croissant 1.0's (schema.org vocabulary, `cr:` for Croissant terms, `dct:` for
conformsTo) plus the RAI namespace `rai:`. The distribution lists every tokenized shard as a
FileObject with its SHA-256 (from run_manifest.json when the run has one) and the document listing;
the record set describes the shards' rows (one per document or piece, with its rights columns).
The RAI properties say how the data was collected, preprocessed and what its limits are, in text
built from the run's config and counts (datacard.py gives the same facts as a readable card).
"""

from __future__ import annotations

from typing import Any

CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
CONFORMS_TO = ["http://mlcommons.org/croissant/1.0", "http://mlcommons.org/croissant/RAI/1.0"]
# Dataset-level RAI properties this file always has (tests check them).
RAI_KEYS = (
    "rai:dataCollection",
    "rai:dataCollectionType",
    "rai:dataPreprocessingProtocol",
    "rai:dataManipulationProtocol",
    "rai:dataLimitations",
    "rai:dataBiases",
    "rai:personalSensitiveInformation",
    "rai:dataUseCases",
    "rai:dataSocialImpact",
    "rai:dataReleaseMaintenance",
)
ROW_FIELDS = (
    ("doc_id", "sc:Text", "The document's stable id (its row in the provenance manifest and the listing)."),
    ("piece", "sc:Integer", "0 for a whole document, else the number of the piece of a long document."),
    ("num_tokens", "sc:Integer", "Tokens of the row, BOS/EOS included."),
    (
        "token_start",
        "sc:Integer",
        "Start of the row's range in the shard's token stream (the Megatron .bin).",
    ),
    ("token_end", "sc:Integer", "End (exclusive) of the row's range."),
    ("source", "sc:Text", "commoncrawl, kokkai, egov, gov_web, synthetic or local."),
    ("license", "sc:Text", "SPDX licence expression or LicenseRef- of the document."),
    ("osaid_class", "sc:Text", "OSAID data class: open, public, obtainable or unshareable."),
    ("redistribution", "sc:Text", "text (may be shared as text) or locator_only (share the locator)."),
    ("masked", "sc:Boolean", "True when a takedown masked the row's tokens in place: do not train on it."),
)


def croissant(
    name: str,
    description: str,
    rai: dict[str, Any],
    shard_files: list[tuple[str, str | None]],
    listing: tuple[str, str | None],
    license_ids: list[str],
    date_created: str | None = None,
) -> dict[str, Any]:
    """The JSON-LD object. `shard_files` and `listing`: (path relative to the card, SHA-256)."""
    distribution: list[dict[str, Any]] = []
    for path, sha in shard_files:
        entry = {
            "@type": "cr:FileObject",
            "@id": path,
            "name": path,
            "contentUrl": path,
            "encodingFormat": "application/x-parquet",
        }
        distribution.append(entry | ({"sha256": sha} if sha else {}))
    distribution.append(
        {
            "@type": "cr:FileSet",
            "@id": "token-shards",
            "name": "token-shards",
            "description": "The tokenized shards (one row per document or piece).",
            "encodingFormat": "application/x-parquet",
            "includes": "tokenize/part-?????.parquet",
        }
    )
    path, sha = listing
    distribution.append(
        {
            "@type": "cr:FileObject",
            "@id": "document-listing",
            "name": "document-listing",
            "description": "Every training document with its source URI, locator, licence and OSAID class.",
            "contentUrl": path,
            "encodingFormat": "text/csv",
        }
        | ({"sha256": sha} if sha else {})
    )
    fields = [
        {
            "@type": "cr:Field",
            "@id": f"rows/{column}",
            "name": column,
            "description": text,
            "dataType": data_type,
            "source": {"fileSet": {"@id": "token-shards"}, "extract": {"column": column}},
        }
        for column, data_type, text in ROW_FIELDS
    ]
    doc = {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": name,
        "description": description,
        "conformsTo": CONFORMS_TO,
        "license": license_ids,
        "url": "document-listing.csv",
        "inLanguage": "ja",
        "distribution": distribution,
        "recordSet": [
            {
                "@type": "cr:RecordSet",
                "@id": "rows",
                "name": "rows",
                "description": "One row per document or piece of one, with its token range and rights.",
                "field": fields,
            }
        ],
    }
    if date_created:
        doc["dateCreated"] = date_created
    missing = [k for k in RAI_KEYS if k not in rai]
    if missing:
        raise ValueError(f"RAI properties missing: {missing}")
    return doc | rai
