namespace Slate.Model
