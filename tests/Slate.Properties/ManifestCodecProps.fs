module Slate.Properties.ManifestCodecProps

open Expecto

let allTests = testList "ManifestCodec" []
