"""gopro-deblur data pipeline: organize GOPRO footage, shard random-crop pairs into TFRecords with Beam."""

__version__ = "0.1.0"
