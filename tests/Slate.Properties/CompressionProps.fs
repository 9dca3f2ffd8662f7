module Slate.Properties.CompressionProps

open Expecto

let allTests = testList "Compression" []
