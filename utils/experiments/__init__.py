"""Paper experiments and their analysis: twin check, uncertainty, mask game, saliency scores, figures."""
