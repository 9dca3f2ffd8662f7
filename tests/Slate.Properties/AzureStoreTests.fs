module Slate.Properties.AzureStoreTests

open Expecto

let allTests = testList "Azure" []
