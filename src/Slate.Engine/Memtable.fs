namespace Slate.Engine
