module Slate.Properties.FlatBufProps

open Expecto

let allTests = testList "FlatBuf" []
