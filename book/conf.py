# Sphinx + MyST-NB configuration of the book (`make book`; `python -m jointlab.book build`).
# The notebooks are rendered with the outputs `make demo` stored in them: nothing is executed here.
project = "jointlab"
author = "jointlab developers"
copyright = "jointlab developers (MIT licence)"
extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"
# no require.js / ipywidgets HTML manager from a CDN: live widgets need a kernel anyway, and each
# slider panel stores a kernel-free copy of itself (AttackPanel.static_html) in the notebook
nb_ipywidgets_js = {}
# MathJax 3 (SVG output: no web fonts) from the pip package django-static-mathjax, copied into
# _static by jointlab.book; the page fetches nothing from the network
mathjax_path = "mathjax/tex-svg-full.js"
html_static_path = ["_static"]
html_theme = "alabaster"
html_theme_options = {"show_powered_by": False, "page_width": "1100px", "sidebar_width": "230px"}
html_title = "jointlab: Joint Adversarial Training, a notebook-first kit"
html_show_sourcelink = False
html_copy_source = False  # the notebooks are in the repository; keep the site small
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]
# MyST turns $…$ into math only in Markdown; the answers of "Check your understanding" sit in raw
# <details> HTML, where it leaves them as text. MathJax therefore also reads $…$ in the page itself
# (not in code: MathJax skips pre/code), instead of only the elements MyST marked as math.
myst_update_mathjax = False
mathjax3_config = {
    "tex": {"inlineMath": [["\\(", "\\)"], ["$", "$"]], "displayMath": [["\\[", "\\]"], ["$$", "$$"]],
            "processEscapes": True},
    "options": {"ignoreHtmlClass": "tex2jax_ignore|mathjax_ignore",
                "processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"},
}
