"""`td-detr demo`: a local web page (Gradio, extra ``demo``) to look at a model's answers.

* :mod:`.session` answers queries (a data set's own, free text, a video file) without any web code;
* :mod:`.figure` draws an answer: the timeline (ground truth against the top predicted windows) over the per-clip
  saliency curve;
* :mod:`.app` lays out the page; it is the only module that imports Gradio.
"""
