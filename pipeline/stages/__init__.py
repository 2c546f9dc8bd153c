"""The stages, in the order a run applies them."""

from manifests.layout import STAGE_ORDER
from pipeline.stage import Stage
from pipeline.stages.clean import CleanStage
from pipeline.stages.dedup import DedupStage
from pipeline.stages.extract import ExtractStage
from pipeline.stages.fetch import FetchStage
from pipeline.stages.quality import QualityStage
from pipeline.stages.tokenize import TokenizeStage

STAGES: dict[str, type[Stage]] = {
    s.name: s for s in (FetchStage, ExtractStage, CleanStage, DedupStage, QualityStage, TokenizeStage)
}
assert tuple(STAGES) == STAGE_ORDER, "the stage classes and the run layout must list the same stages"
