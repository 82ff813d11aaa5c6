"""How a page of this site is built: one pipeline, shared by MkDocs and Zensical.

A page names each example once, with a directive that stays an HTML comment
when the Markdown is read unbuilt::

    <!-- example: fundamentals/core_concepts_event_bus.py collapsed output=run -->

`sitebuild.examples` is the Python-Markdown extension that renders it: the
titled block (the whole module, or one ``# --8<-- [start:name]`` section of it
as a labelled excerpt), the Run bar or the note saying why the browser cannot
run it, links to download the module and its tests, and the output, printed by
running the module at build time or recorded against the real engines. Every
rendered example carries its identity in ``data-example-*`` attributes, from
which `sitebuild.manifest` writes ``examples.json`` next to the pages; the
tests read that instead of searching the HTML for code.

`sitebuild.facts` holds what the build and the tests must agree on (paths,
chapter titles, the engines, the reader's environment, the section markers).
`sitebuild.static` puts the files the pages link to into ``docs/`` before a
build (Pyodide, downloadable modules, the code-reference pages), so MkDocs and
Zensical serve the same site from the same sources.
"""
