"""Paper experiments and analysis: twin check, uncertainty, mask game, saliency scores, figures."""
