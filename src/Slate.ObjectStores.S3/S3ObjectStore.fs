namespace Slate.ObjectStores.S3
