"""The documents of a YAML text, each with the line it starts on, for errors that say where.

Used by the manifest reader (``apply -f``) and the pipeline and workflow spec readers. YAML
errors become :class:`InvalidObject` naming ``source:line``. PyYAML is imported on first use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from edgeweave.errors import InvalidObject


def yaml_documents(text: str, source: str) -> Iterator[tuple[Any, int]]:
    """``(value, first line)`` for each document of ``text`` (a blank one gives None)."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            yield loader.construct_document(node), node.start_mark.line + 1
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise InvalidObject(f"{where}: {e.problem or e.context or 'invalid YAML'}") from None
    except yaml.YAMLError as e:
        raise InvalidObject(f"{source}: {e}") from None
    finally:
        loader.dispose()
