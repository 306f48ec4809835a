"""MosaicML Streaming's dataset with the bench's item work (``peers.streaming``): a subclass, as
Streaming's documentation extends it. A module of its own because it imports ``streaming`` at
the top (the DataLoader's workers unpickle the class from here); only ``peers.streaming`` imports it."""

from streaming import StreamingDataset


class StreamingFiles(StreamingDataset):
    """A ``StreamingDataset`` over MDS samples ``{image, label, index}`` whose items are ``item(image, label, index)``."""

    def __init__(self, *, item, **kwargs):
        super().__init__(**kwargs)
        self.item = item

    def __getitem__(self, i):
        sample = super().__getitem__(i)
        return self.item(sample["image"], int(sample["label"]), int(sample["index"]))
