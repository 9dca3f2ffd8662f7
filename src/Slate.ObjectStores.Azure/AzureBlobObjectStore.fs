namespace Slate.ObjectStores.Azure
