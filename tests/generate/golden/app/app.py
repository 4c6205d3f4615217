import fal

class TextStats(fal.App):
    pass
