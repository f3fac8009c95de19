"""Labels out: export a project (or a saved version) to COCO, YOLO, Pascal VOC, Label Studio or JSON Lines."""

from common.export.exporter import FORMATS, ExportFormat, Progress, export_project, open_source
from common.export.source import ExportItem, ExportSource
from common.export.summary import ExportSummary

__all__ = [
    "FORMATS",
    "ExportFormat",
    "ExportItem",
    "ExportSource",
    "ExportSummary",
    "Progress",
    "export_project",
    "open_source",
]
