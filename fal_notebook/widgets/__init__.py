"""ipywidgets front ends: the Playground and the fal login form."""
