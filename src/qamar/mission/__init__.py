"""Mission scenarios, the analysis pipeline behind `qamar run`, and the HTML report."""
