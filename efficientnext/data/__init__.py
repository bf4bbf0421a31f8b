"""The data half of the pipeline, one module per job.

generate    stage generate: the embedded stand-in dataset (data/raw/<class>/<file>)
layout      which files of data.root are the dataset (class folders or the scraper's train/ + test/)
images      strict opening for validate; load_rgb, the one RGB conversion every reader uses
validate    stage validate: data/manifest.csv (status, reason, hashes, duplicate groups), metrics/validate.json
split       stage split: stratified, group-aware data/splits/{train,val,test}.csv
prepare     stage prepare: every usable image decoded once into data/prepared (one blob + index)
subset      stage subset: the class-balanced sweep subset data/subset.csv
tables      reading the manifest, split and subset tables
datasets    PreparedImages, the torch Dataset over the prepared cache
transforms  the train and eval transforms (torchvision v2)
"""
