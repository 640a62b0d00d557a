"""Message templates: strict sandboxed rendering and the checks that keep placeholders from leaking."""

from herald.templates.checks import (
    LEFTOVER_PATTERNS,
    CoverageReport,
    Leftover,
    LeftoverPattern,
    TemplateNeeds,
    coverage_report,
    find_leftovers,
)
from herald.templates.render import (
    CompiledTemplate,
    Held,
    Rendered,
    TemplateInvalidError,
    TemplateSpec,
    TemplateUnsafeError,
    VariableSpec,
    compile_template,
    render_compiled,
    render_template,
)

__all__ = [
    "LEFTOVER_PATTERNS",
    "CompiledTemplate",
    "CoverageReport",
    "Held",
    "Leftover",
    "LeftoverPattern",
    "Rendered",
    "TemplateInvalidError",
    "TemplateNeeds",
    "TemplateSpec",
    "TemplateUnsafeError",
    "VariableSpec",
    "compile_template",
    "coverage_report",
    "find_leftovers",
    "render_compiled",
    "render_template",
]
