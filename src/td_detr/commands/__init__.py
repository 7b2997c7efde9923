"""One module per ``td-detr`` sub-command; see :mod:`td_detr.cli`."""
