"""How an answer is made from the model, one job per module, no Ray: prune the schema (`prune`),
retrieve solved examples (`retrieve`), execute candidates (`execution`), vote on their results
(`vote`), and the pipeline that runs them around one batched generate (`pipeline`). `sqlfoundry
generate`, `sqlfoundry eval` and the Serve model deployment all answer through `pipeline`."""
