"""Renderers: each draws an Alignment, from the same RenderOptions, to one kind of output.

``terminal.render_text(alignments, console, options)`` prints the translation and a rich table;
``figure.render_figure(alignment, path, options)`` / ``figure.FigureRenderer(options)`` draw
PNG, SVG or PDF files. What is drawn (weights or scores, the colour scale and its caption, the
row maxima) is decided once, by :func:`attnviz.render.values.view`.
"""
